package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: 100 on every Linux architecture Go supports.
const clockTicks = 100

// collector is one collector process started by the tool. Its methods are
// safe for concurrent use.
type collector struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited

	API, OTLPHTTP, OTLPGRPC, UI string // host:port bound, "" when not logged
}

// startOptions configure startCollector.
type startOptions struct {
	Bin     string
	DataDir string
	LogPath string
	// UI serves the built-in UI on a loopback port when true (--ui-addr
	// empty disables it otherwise).
	UI bool
	// Args are added after the listener flags.
	Args []string
	// Timeout bounds the wait for every listener and /readyz.
	Timeout time.Duration
}

// addrPattern matches the collector's "<what> listening" log lines in
// slog's text and JSON forms.
var addrPattern = regexp.MustCompile(`(?:msg="?|"msg":")(api|otlp http|otlp grpc|ui) listening"?[ ,](?:addr=|"addr":")([^ ",]+)`)

// parseAddrs returns the listen addresses logged in log, by what
// listens ("api", "otlp http", "otlp grpc", "ui").
func parseAddrs(log string) map[string]string {
	m := map[string]string{}
	for _, s := range addrPattern.FindAllStringSubmatch(log, -1) {
		m[s[1]] = s[2]
	}
	return m
}

// startCollector runs o.Bin with every listener on a loopback port of its
// own choosing and waits until it logged its addresses and answers
// /readyz. The process ends when stop is called or ctx is done.
func startCollector(ctx context.Context, o startOptions) (*collector, error) {
	ui := "--ui-addr="
	if o.UI {
		ui = "--ui-addr=127.0.0.1:0"
	}
	args := append([]string{
		"--api-addr=127.0.0.1:0", "--otlp-http-addr=127.0.0.1:0", "--otlp-grpc-addr=127.0.0.1:0", ui,
		"--data-dir=" + o.DataDir, "--log-level=info",
	}, o.Args...)
	logf, err := os.Create(o.LogPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	c := &collector{cmd: cmd, logPath: o.LogPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	deadline := time.Now().Add(o.Timeout)
	for {
		b, _ := os.ReadFile(o.LogPath)
		a := parseAddrs(string(b))
		c.API, c.OTLPHTTP, c.OTLPGRPC, c.UI = a["api"], a["otlp http"], a["otlp grpc"], a["ui"]
		if c.API != "" && c.OTLPHTTP != "" && (!o.UI || c.UI != "") && c.ready(ctx) {
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("collector exited at start (%s):\n%s", cmd.ProcessState, c.logTail(30))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("collector not ready after %s:\n%s", o.Timeout, c.logTail(30))
		}
	}
}

func (c *collector) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.API+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// logTail returns the last n lines the process logged.
func (c *collector) logTail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// alive reports whether the process still runs.
func (c *collector) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to 15 s, then kills the process.
func (c *collector) stop() {
	if !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procUsage is what /proc says of a process at one moment.
type procUsage struct {
	CPU   float64 // user+system CPU seconds since it started
	RSSKB int64   // VmRSS
	HWMKB int64   // VmHWM, the peak RSS
}

// usage reads the process's CPU seconds and memory from /proc.
func usage(pid int) (procUsage, error) {
	var u procUsage
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return u, err
	}
	// Fields after the command (which may hold spaces) in parentheses:
	// state is field 3, utime 14 and stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	u.CPU = (ut + st) / clockTicks
	st2, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return u, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(st2)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var kb int64
		fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
		switch k {
		case "VmRSS":
			u.RSSKB = kb
		case "VmHWM":
			u.HWMKB = kb
		}
	}
	return u, nil
}

// cpu returns the collector's CPU seconds so far (0 once it has exited).
func (c *collector) cpu() float64 {
	u, err := usage(c.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return u.CPU
}

// metrics returns the collector's /metrics, parsed; empty on error (a
// build without the endpoint or a metric is still measured).
func (c *collector) metrics(ctx context.Context) promText {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.API+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return promText{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return promText{}
	}
	return parseProm(string(b))
}

// promText is Prometheus text exposition: value by series (name with its
// labels, as written).
type promText map[string]float64

func parseProm(s string) promText {
	m := promText{}
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		// client_golang writes no timestamps: the value is the last field
		// (label values may hold spaces).
		series, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		m[series] = v
	}
	return m
}

// sum returns the sum of every series of metric name, and whether there
// was any.
func (p promText) sum(name string) (float64, bool) {
	var s float64
	var found bool
	for k, v := range p {
		if k == name || (strings.HasPrefix(k, name+"{")) {
			s += v
			found = true
		}
	}
	return s, found
}

// sumWith returns the sum of the series of metric name whose labels hold
// label (e.g. `route="/api/v1/graph"`), and whether there was any.
func (p promText) sumWith(name, label string) (float64, bool) {
	var s float64
	var found bool
	for k, v := range p {
		if strings.HasPrefix(k, name+"{") && (strings.Contains(k, "{"+label+",") || strings.Contains(k, ","+label+",") ||
			strings.Contains(k, ","+label+"}") || strings.Contains(k, "{"+label+"}")) {
			s += v
			found = true
		}
	}
	return s, found
}

// get returns one series exactly as exposed (name{labels}).
func (p promText) get(series string) (float64, bool) {
	v, ok := p[series]
	return v, ok
}

// machineCPU is the whole machine's CPU time from /proc/stat, in seconds.
type machineCPU struct{ busy, total float64 }

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	for i, s := range f[1:] {
		if i >= 8 { // guest times are counted in user already
			break
		}
		v, _ := strconv.ParseFloat(s, 64)
		v /= clockTicks
		m.total += v
		if i != 3 && i != 4 { // idle, iowait
			m.busy += v
		}
	}
	return m
}

// meter measures a span of time: the collector's CPU, the tool's own and
// the rest of the machine's.
type meter struct {
	c     *collector
	t0    time.Time
	coll0 float64
	self0 float64
	mach0 machineCPU
}

// meterReading is what a meter measured, in CPU seconds.
type meterReading struct {
	Wall      time.Duration
	Collector float64 // the collector's own
	Tool      float64 // this tool's (senders and clients)
	Others    float64 // every other process of the machine
}

func startMeter(c *collector) *meter {
	self, _ := usage(os.Getpid())
	return &meter{c: c, t0: time.Now(), coll0: c.cpu(), self0: self.CPU, mach0: readMachineCPU()}
}

// read returns what was used since the meter started.
func (m *meter) read() meterReading {
	self, _ := usage(os.Getpid())
	mach := readMachineCPU()
	r := meterReading{Wall: time.Since(m.t0), Collector: m.c.cpu() - m.coll0, Tool: self.CPU - m.self0}
	r.Others = max(0, mach.busy-m.mach0.busy-r.Collector-r.Tool)
	return r
}

// share is CPU seconds as a percentage of one core over r's wall time.
func (r meterReading) share(cpu float64) float64 {
	if r.Wall <= 0 {
		return 0
	}
	return 100 * cpu / r.Wall.Seconds()
}
