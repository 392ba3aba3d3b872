// Package servers starts, for one run of the tests, the servers they need
// (ClickHouse, RabbitMQ, Redis, PostgreSQL) and finds or builds the
// programs they run themselves (nats-server, Chromium, Alertmanager,
// HotROD, Helm). One file per server or program.
//
// Every server is a child process of the caller, on free loopback ports,
// with its data, configuration and logs in a temporary directory of its
// own; Stop ends it and removes that directory. Nothing here reads or
// changes a system service's configuration, or starts or stops a process
// it did not start itself. Missing Debian packages are installed with
// apt-get when Env.Install allows it; downloads and builds are cached in
// Env.Cache and announced on Env.Log before they start.
package servers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrMissing is wrapped by the error of a component whose program is not
// installed and may not be installed (Env.Install is false, or apt-get is
// not available).
var ErrMissing = errors.New("missing")

// Env is what every component needs. It is shared by the components of one
// run and not changed after they start.
type Env struct {
	// Cache holds downloads and builds between runs, outside the repository.
	Cache string
	// Root is the repository's root directory (HotROD's pinned go.mod is there).
	Root string
	// TempDir is where each server's temporary directory is made; "" is
	// the system's.
	TempDir string
	// Log receives one line per step that takes a while or changes the
	// machine (installing, downloading, building), and the output of
	// apt-get and of builds.
	Log io.Writer
	// Install allows installing missing Debian packages with apt-get.
	Install bool
	// Apt installs Debian packages; shared so that concurrent components
	// install one at a time.
	Apt *Apt
	// StartTimeout bounds how long a server may take to answer.
	StartTimeout time.Duration
	// StopTimeout bounds how long a server may take to exit after it is
	// asked to, before it is killed.
	StopTimeout time.Duration
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "testenv: "+format+"\n", args...)
}

// Component is one server or program the tests need.
type Component interface {
	// Name is its short name (clickhouse, rabbitmq, ...).
	Name() string
	// Vars are the environment variables Start sets (need's names).
	Vars() []string
	// Tools are the programs it runs, with the Debian packages they come in.
	Tools() []Tool
	// Prepare makes what it needs beyond Tools (downloads, builds), cached
	// in Env.Cache. It runs after every missing package is installed.
	Prepare(ctx context.Context, env *Env) error
	// Start starts it, returning once it answers, or an error that names
	// what failed and ends with the tail of its log.
	Start(ctx context.Context, env *Env) (*Server, error)
}

// All returns every component, in the order they are reported.
func All() []Component {
	return []Component{&ClickHouse{}, &ClickHouseCluster{}, &RabbitMQ{}, &Redis{}, &Postgres{},
		&NATSServer{}, &Chromium{}, &Alertmanager{}, &HotROD{}, &Helm{}, &OtelcolLB{}}
}

// Server is what a component started (or found): the variables to hand to
// the tests and how to stop it. Stop is safe to call more than once and
// from several goroutines.
type Server struct {
	Name string
	// Summary is one line: what it is and where it listens.
	Summary string
	// Vars are the environment variables for the tests, in Vars() order.
	Vars []EnvVar
	// Dir is its temporary directory ("" for a program that is only found).
	Dir string
	// Took is how long it took to start.
	Took time.Duration

	procs    []*proc // stopped last to first
	stopOnce sync.Once
	stopErr  error
	stopTO   time.Duration
}

// EnvVar is one NAME=value for the command under test.
type EnvVar struct{ Name, Value string }

func (v EnvVar) String() string { return v.Name + "=" + v.Value }

// Stop ends the server's processes, last started first (each asked to exit,
// then killed after the stop timeout), and removes its directory.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		for i := len(s.procs) - 1; i >= 0; i-- {
			errs = append(errs, s.procs[i].stop(s.stopTO))
		}
		if s.Dir != "" {
			errs = append(errs, removeAll(s.Dir))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// removeAll removes dir; files a server made read-only do not stop it.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		return os.RemoveAll(dir)
	}
	return nil
}

// tempDir makes the temporary directory of one server.
func (e *Env) tempDir(name string) (string, error) {
	return os.MkdirTemp(e.TempDir, "cartograph-test-"+name+"-")
}

// proc is one child process with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when it has exited
	waitErr error         // set before done closes
	// stopSig asks it to exit (SIGTERM unless the server wants another).
	stopSig syscall.Signal
}

// startProc starts cmd in a process group of its own (a terminal's ^C goes
// to the tests, which are stopped first), killed if this process dies,
// with stdout and stderr appended to logPath.
func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), stopSig: syscall.SIGTERM}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends stopSig, waits up to timeout, then kills the process group,
// and waits for the exit. Whatever it left in its group is killed too.
func (p *proc) stop(timeout time.Duration) error {
	pid := p.cmd.Process.Pid
	if !p.exited() {
		_ = syscall.Kill(pid, p.stopSig)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return fmt.Errorf("%s (pid %d) did not exit within %s of signal %v: killed", p.name, pid, timeout, p.stopSig)
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // helpers it left behind, if any
	return nil
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string { return tailFile(p.logPath, n) }

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(log is empty)"
	}
	return strings.Join(lines, "\n")
}

// errStart is the error of a server that did not come up: what, why, and
// its log's tail.
func errStart(name string, p *proc, why error) error {
	return fmt.Errorf("%s did not start: %w\n--- last lines of %s ---\n%s", name, why, p.logPath, p.tail(30))
}

// errPortTaken marks a start that failed because a port chosen free was
// taken before the server bound it; the caller tries again with new ports.
var errPortTaken = errors.New("a port was taken")

// portTaken reports whether the log says a port was in use.
func portTaken(p *proc) bool {
	t := strings.ToLower(p.tail(60))
	return strings.Contains(t, "address already in use") || strings.Contains(t, "eaddrinuse") ||
		strings.Contains(t, "address in use")
}

// waitReady polls ready every 100 ms until it returns nil, p exits, ctx
// ends or timeout passes.
func waitReady(ctx context.Context, timeout time.Duration, p *proc, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		last = ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			if portTaken(p) {
				return fmt.Errorf("%w: exited: %v", errPortTaken, p.waitErr)
			}
			return fmt.Errorf("exited before it answered: %v", p.waitErr)
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("no answer within %s (last: %v)", timeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// withPorts runs start with n free ports, again with new ones (up to three
// times) when it fails with errPortTaken.
func withPorts(n int, start func(ports []int) (*Server, error)) (*Server, error) {
	var err error
	for range 3 {
		var ports []int
		if ports, err = freePorts(n); err != nil {
			return nil, err
		}
		var s *Server
		if s, err = start(ports); err == nil || !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
	return nil, err
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// dialable reports whether something accepts TCP connections on addr.
func dialable(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
