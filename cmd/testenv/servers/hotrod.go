package servers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// hotrodModule is the module whose examples/hotrod is built; its version
// is the one ingest/corpus/testdata/hotrod/go.mod requires (that go.mod
// and its go.sum pin every dependency).
const hotrodModule = "github.com/jaegertracing/jaeger"

// HotROD is Jaeger's HotROD demo, which ingest/corpus's TestHotROD runs as
// a real instrumented application. It is built into Env.Cache once (about
// 25 s here); the test starts it itself on free ports.
type HotROD struct{}

func (*HotROD) Name() string   { return "hotrod" }
func (*HotROD) Vars() []string { return []string{need.EnvHotROD} }
func (*HotROD) Tools() []Tool  { return nil }

func (*HotROD) pinned(env *Env) string {
	return filepath.Join(env.Root, "ingest", "corpus", "testdata", "hotrod")
}

// version reads the pinned go.mod.
func (h *HotROD) version(env *Env) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.pinned(env), "go.mod"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "require"))
		if len(f) >= 2 && f[0] == hotrodModule {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s/go.mod requires no %s", h.pinned(env), hotrodModule)
}

func (h *HotROD) bin(env *Env) (string, error) {
	v, err := h.version(env)
	if err != nil {
		return "", err
	}
	return filepath.Join(env.Cache, "hotrod-"+v, "hotrod"), nil
}

// Prepare builds HotROD with the pinned go.mod and go.sum unless the cache
// has it.
func (h *HotROD) Prepare(ctx context.Context, env *Env) error {
	bin, err := h.bin(env)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	src := filepath.Join(filepath.Dir(bin), "src")
	env.logf("hotrod: building %s/examples/hotrod (%s) into %s (once; about 25 s)",
		hotrodModule, filepath.Base(filepath.Dir(bin)), filepath.Dir(bin))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(h.pinned(env), f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			return err
		}
	}
	tmp := bin + ".tmp" + fmt.Sprint(os.Getpid())
	cmd := goCommand(ctx, env, src, "build", "-mod=readonly", "-o", tmp, hotrodModule+"/examples/hotrod")
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build HotROD: %w", err)
	}
	return os.Rename(tmp, bin)
}

// Start hands on the binary's path.
func (h *HotROD) Start(ctx context.Context, env *Env) (*Server, error) {
	bin, err := h.bin(env)
	if err != nil {
		return nil, err
	}
	return program(ctx, h.Name(), bin, need.EnvHotROD, "")
}
