// Command testenv runs a command (the tests) with the servers and programs
// the tests need, started for that run only:
//
//	go run ./cmd/testenv -- go test -race -count=1 -timeout=30m ./...
//
// It installs what is missing (Debian packages with apt-get, the ClickHouse
// engine with npm, Alertmanager and HotROD with go build; all announced,
// downloads and builds cached in $CARTOGRAPH_CACHE, default
// ~/.cache/cartograph), starts its own ClickHouse, RabbitMQ, Redis and
// PostgreSQL on free loopback ports in temporary directories, hands their
// addresses to the command in CARTOGRAPH_TEST_* variables (see
// cmd/testenv/need), runs it, stops every server it started (also when the
// command fails, or on SIGINT/SIGTERM, which it passes on to the command
// first) and removes their directories. It exits with the command's exit
// status. It never touches a system service: no file under /etc, no
// process it did not start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/servers"
)

// config is the command line.
type config struct {
	only         string
	install      bool
	cache        string
	startTimeout time.Duration
	stopTimeout  time.Duration
	childGrace   time.Duration
	command      []string
}

func parseFlags(args []string, output io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("testenv", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./cmd/testenv [flags] -- command [args...]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var names []string
	for _, comp := range servers.All() {
		names = append(names, comp.Name())
	}
	fs.StringVar(&c.only, "only", "", "comma-separated components to provide, of: "+strings.Join(names, ", ")+" (default all)")
	fs.BoolVar(&c.install, "install", true, "install missing Debian packages with apt-get (as root)")
	fs.StringVar(&c.cache, "cache", defaultCache(), "directory for downloads and builds kept between runs (env CARTOGRAPH_CACHE)")
	fs.DurationVar(&c.startTimeout, "start-timeout", 3*time.Minute, "how long a server may take to answer")
	fs.DurationVar(&c.stopTimeout, "stop-timeout", 30*time.Second, "how long a server may take to exit before it is killed")
	fs.DurationVar(&c.childGrace, "signal-grace", time.Minute, "after passing SIGINT/SIGTERM on to the command, how long to wait before killing it")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.command = fs.Args()
	if len(c.command) == 0 {
		fs.Usage()
		return c, errors.New("no command given")
	}
	return c, nil
}

func defaultCache() string {
	if c := os.Getenv("CARTOGRAPH_CACHE"); c != "" {
		return c
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "cartograph")
	}
	return filepath.Join(os.TempDir(), "cartograph-cache")
}

// components returns the components named in only (all when empty).
func components(only string) ([]servers.Component, error) {
	all := servers.All()
	if only == "" {
		return all, nil
	}
	var out []servers.Component
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(c servers.Component) bool { return c.Name() == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("-only: no component %q", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// repoRoot is the nearest directory at or above the working directory
// with a go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s: run testenv in the repository", dir)
		}
	}
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 2
	}
	comps, err := components(cfg.only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 2
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 2
	}
	env := &servers.Env{
		Cache: cfg.cache, Root: root, Log: os.Stderr, Install: cfg.install, Apt: &servers.Apt{},
		StartTimeout: cfg.startTimeout, StopTimeout: cfg.stopTimeout,
	}

	// A signal while the servers start cancels the start; once the
	// command runs it is passed on to the command's process group.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		child    *os.Process
		signaled syscall.Signal
	)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			mu.Lock()
			signaled = sig
			if child == nil {
				cancel()
			} else {
				fmt.Fprintf(os.Stderr, "testenv: %v: passing it on to the command (killed if still running in %s)\n", sig, cfg.childGrace)
				pid := child.Pid
				_ = syscall.Kill(-pid, sig)
				time.AfterFunc(cfg.childGrace, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
			}
			mu.Unlock()
		}
	}()

	start := time.Now()
	set, err := servers.Up(ctx, env, comps)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		mu.Lock()
		defer mu.Unlock()
		if signaled != 0 {
			return 128 + int(signaled)
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "testenv: ready in %.1f s; running %s\n", time.Since(start).Seconds(), strings.Join(cfg.command, " "))

	code := runCommand(cfg.command, childEnv(set, cfg.cache), func(p *os.Process) {
		mu.Lock()
		child = p
		mu.Unlock()
	})
	if err := set.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// childEnv is this process's environment with the servers' variables and
// the cache directory (the tests of cmd/testenv use it).
func childEnv(set *servers.Set, cache string) []string {
	env := os.Environ()
	for _, v := range set.Vars {
		env = append(env, v.String())
	}
	return append(env, "CARTOGRAPH_CACHE="+cache)
}

// runCommand runs command in a process group of its own (so that a signal
// reaches all of it, test binaries included), with this process's standard
// input and output, and returns its exit status (128+n when signal n
// ended it). started is called with the process once it runs.
func runCommand(command, env []string, started func(*os.Process)) int {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 127
	}
	started(cmd.Process)
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
}
