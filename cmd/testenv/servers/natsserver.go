package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// NATSServer is the nats-server program. It is not started here: the tests
// start their own servers with it (with monitoring, on free ports; one test
// kills and restarts its server), which takes about 0.1 s.
type NATSServer struct{}

var natsServerBin = Tool{Names: []string{"nats-server"}, Dirs: []string{"/usr/sbin", "/usr/local/sbin"}, Package: "nats-server"}

func (*NATSServer) Name() string                        { return "nats-server" }
func (*NATSServer) Vars() []string                      { return []string{need.EnvNATSServer} }
func (*NATSServer) Tools() []Tool                       { return []Tool{natsServerBin} }
func (*NATSServer) Prepare(context.Context, *Env) error { return nil }

// Start checks that nats-server runs (--version) and hands on its path.
func (n *NATSServer) Start(ctx context.Context, env *Env) (*Server, error) {
	bin, err := natsServerBin.Find()
	if err != nil {
		return nil, err
	}
	return program(ctx, n.Name(), bin, need.EnvNATSServer, "--version")
}

// program is the Server of a program the tests run themselves: its path,
// checked by running it with versionArg (unless that is "").
func program(ctx context.Context, name, bin, envName, versionArg string) (*Server, error) {
	start := time.Now()
	if versionArg == "" {
		if err := executable(bin); err != nil {
			return nil, fmt.Errorf("%s: %w", bin, err)
		}
		return &Server{Name: name, Summary: bin, Vars: []EnvVar{{envName, bin}}, Took: time.Since(start)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, versionArg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s%s", bin, versionArg, err, out, stderr.String())
	}
	// The first line on stdout (nats-server prints it on stderr).
	version, _, _ := strings.Cut(strings.TrimSpace(string(out)+"\n"+stderr.String()), "\n")
	return &Server{
		Name:    name,
		Summary: fmt.Sprintf("%s (%s)", bin, version),
		Vars:    []EnvVar{{envName, bin}},
		Took:    time.Since(start),
	}, nil
}

// executable returns nil when path is a file someone may execute.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
