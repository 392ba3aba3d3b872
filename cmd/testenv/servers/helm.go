package servers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// helmVersion is the Helm release the chart tests render with
// (deploy/helm/charttest, cmd/collector's and cmd/ui's TestHelmChart*).
const helmVersion = "v4.3.2"

// Helm is Helm 4, built from the Go module proxy into Env.Cache once (2-7
// minutes on 2 cores), inside a copy of that version's module so Helm's
// own go.mod and go.sum apply. The repository's go.mod is never touched.
type Helm struct{}

func (*Helm) Name() string   { return "helm" }
func (*Helm) Vars() []string { return []string{need.EnvHelm} }
func (*Helm) Tools() []Tool  { return nil }

func (*Helm) bin(env *Env) string {
	return filepath.Join(env.Cache, "helm-"+helmVersion, "helm")
}

// Prepare builds Helm unless the cache has it.
func (h *Helm) Prepare(ctx context.Context, env *Env) error {
	bin := h.bin(env)
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	const mod = "helm.sh/helm/v4"
	env.logf("helm: building %s@%s from the Go module proxy into %s (once; 2-7 minutes on 2 cores)",
		mod, helmVersion, filepath.Dir(bin))
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cartograph-helm-build-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	dir, err := goModDownload(ctx, env, tmp, mod+"@"+helmVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(tmp, "src")
	if err := os.CopyFS(src, os.DirFS(dir)); err != nil {
		return fmt.Errorf("copy %s: %w", dir, err)
	}
	tmpBin := bin + ".tmp" + fmt.Sprint(os.Getpid())
	cmd := goCommand(ctx, env, src, "build", "-trimpath",
		"-ldflags", "-s -w -X helm.sh/helm/v4/internal/version.version="+helmVersion+" -X helm.sh/helm/v4/internal/version.gitTreeState=clean",
		"-o", tmpBin, "./cmd/helm")
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		os.Remove(tmpBin)
		return fmt.Errorf("go build Helm: %w", err)
	}
	return os.Rename(tmpBin, bin)
}

// Start checks the binary runs and hands on its path.
func (h *Helm) Start(ctx context.Context, env *Env) (*Server, error) {
	s, err := program(ctx, h.Name(), h.bin(env), need.EnvHelm, "version")
	if err != nil {
		return nil, err
	}
	if !strings.Contains(s.Summary, helmVersion) {
		return nil, fmt.Errorf("%s: want Helm %s, got %s", h.bin(env), helmVersion, s.Summary)
	}
	return s, nil
}
