package servers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// alertmanagerVersion is the Prometheus Alertmanager release the tests push
// alerts to (cmd/collector's TestE2EAlertmanager*).
const alertmanagerVersion = "v0.35.0"

// Alertmanager is Prometheus Alertmanager, built from the Go module proxy
// into Env.Cache once (2-5 minutes on 2 cores). The tests start their own,
// on free ports. The module as the proxy serves it lacks ui/app/dist (the
// built web UI that go:embed needs), so `go install pkg@version` fails: it
// is built inside a copy of that version's module (its go.mod applies)
// with a one-page placeholder UI. The API (/api/v2) is unchanged. The
// repository's go.mod is never touched.
type Alertmanager struct{}

func (*Alertmanager) Name() string   { return "alertmanager" }
func (*Alertmanager) Vars() []string { return []string{need.EnvAlertmanager} }
func (*Alertmanager) Tools() []Tool  { return nil }

func (*Alertmanager) bin(env *Env) string {
	return filepath.Join(env.Cache, "alertmanager-"+alertmanagerVersion, "alertmanager")
}

// Prepare builds Alertmanager unless the cache has it.
func (a *Alertmanager) Prepare(ctx context.Context, env *Env) error {
	bin := a.bin(env)
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	const mod = "github.com/prometheus/alertmanager"
	env.logf("alertmanager: building %s@%s from the Go module proxy into %s (once; 2-5 minutes on 2 cores)",
		mod, alertmanagerVersion, filepath.Dir(bin))
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cartograph-alertmanager-build-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	dir, err := goModDownload(ctx, env, tmp, mod+"@"+alertmanagerVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(tmp, "src")
	if err := os.CopyFS(src, os.DirFS(dir)); err != nil {
		return fmt.Errorf("copy %s: %w", dir, err)
	}
	for _, ui := range []string{"elm", "mantine"} {
		d := filepath.Join(src, "ui", "app", "dist", ui)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		page := "<!doctype html><title>Alertmanager</title><p>Built without its web UI; the API is at /api/v2.\n"
		if err := os.WriteFile(filepath.Join(d, "index.html"), []byte(page), 0o644); err != nil {
			return err
		}
	}
	tmpBin := bin + ".tmp" + fmt.Sprint(os.Getpid())
	cmd := goCommand(ctx, env, src, "build", "-trimpath",
		"-ldflags", "-X github.com/prometheus/common/version.Version="+strings.TrimPrefix(alertmanagerVersion, "v"),
		"-o", tmpBin, "./cmd/alertmanager")
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		os.Remove(tmpBin)
		return fmt.Errorf("go build Alertmanager: %w", err)
	}
	return os.Rename(tmpBin, bin)
}

// Start checks the binary runs and hands on its path.
func (a *Alertmanager) Start(ctx context.Context, env *Env) (*Server, error) {
	return program(ctx, a.Name(), a.bin(env), need.EnvAlertmanager, "--version")
}

// goCommand is `go args...` in dir with the module settings of a build
// outside this repository (no workspace, GOFLAGS cleared, the public proxy
// unless GOPROXY is set), its output on Env.Log.
func goCommand(ctx context.Context, env *Env, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	if os.Getenv("GOPROXY") == "" {
		cmd.Env = append(cmd.Env, "GOPROXY=https://proxy.golang.org")
	}
	cmd.Stdout, cmd.Stderr = env.Log, env.Log
	return cmd
}

// goModDownload downloads module@version into the module cache and returns
// its directory there.
func goModDownload(ctx context.Context, env *Env, dir, modVersion string) (string, error) {
	cmd := goCommand(ctx, env, dir, "mod", "download", "-json", modVersion)
	cmd.Stdout = nil // the JSON answer; errors go to Env.Log
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); jerr != nil && err == nil {
		err = jerr
	}
	if m.Error != "" {
		err = errors.Join(err, errors.New(m.Error))
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no directory in its answer", modVersion)
	}
	return m.Dir, nil
}
