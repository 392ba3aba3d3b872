package servers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// Redis is a redis-server of its own on a free loopback port, without
// persistence, its working directory a temporary one.
type Redis struct{}

var redisServer = Tool{Names: []string{"redis-server"}, Dirs: []string{"/usr/bin", "/usr/sbin"}, Package: "redis-server"}

func (*Redis) Name() string                        { return "redis" }
func (*Redis) Vars() []string                      { return []string{need.EnvRedis} }
func (*Redis) Tools() []Tool                       { return []Tool{redisServer} }
func (*Redis) Prepare(context.Context, *Env) error { return nil }

// Start runs redis-server and waits for PONG.
func (r *Redis) Start(ctx context.Context, env *Env) (*Server, error) {
	bin, err := redisServer.Find()
	if err != nil {
		return nil, err
	}
	return withPorts(1, func(ports []int) (*Server, error) {
		dir, err := env.tempDir("redis")
		if err != nil {
			return nil, err
		}
		s := &Server{Name: r.Name(), Dir: dir, stopTO: env.StopTimeout}
		a := addr(ports[0])
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
		cmd.Dir = dir
		p, err := startProc("redis-server", cmd, filepath.Join(dir, "redis.log"))
		if err != nil {
			_ = s.Stop()
			return nil, err
		}
		s.procs = append(s.procs, p)
		var version string
		if err := waitReady(ctx, env.StartTimeout, p, func(ctx context.Context) error {
			v, err := redisVersion(ctx, a)
			version = v
			return err
		}); err != nil {
			err = errStart("Redis", p, err)
			_ = s.Stop()
			return nil, err
		}
		s.Summary = fmt.Sprintf("Redis %s, %s", version, a)
		s.Vars = []EnvVar{{need.EnvRedis, a}}
		return s, nil
	})
}

// redisVersion sends PING and INFO server and returns redis_version.
func redisVersion(ctx context.Context, a string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	}
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return "", fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	// INFO's answer is a bulk string: $<len>, then lines key:value.
	if _, err := br.ReadString('\n'); err != nil {
		return "", err
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
}
