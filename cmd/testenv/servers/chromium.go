package servers

import (
	"context"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// Chromium is the browser the UI's tests drive headless with chromedp.
// The tests start it themselves (a temporary profile each, the DevTools
// port chosen by Chromium).
type Chromium struct{}

var chromiumBin = Tool{Names: []string{"chromium", "chromium-browser", "google-chrome"}, Package: "chromium"}

func (*Chromium) Name() string                        { return "chromium" }
func (*Chromium) Vars() []string                      { return []string{need.EnvChromium} }
func (*Chromium) Tools() []Tool                       { return []Tool{chromiumBin} }
func (*Chromium) Prepare(context.Context, *Env) error { return nil }

// Start checks that Chromium runs (--version) and hands on its path.
func (c *Chromium) Start(ctx context.Context, env *Env) (*Server, error) {
	bin, err := chromiumBin.Find()
	if err != nil {
		return nil, err
	}
	return program(ctx, c.Name(), bin, need.EnvChromium, "--version")
}
