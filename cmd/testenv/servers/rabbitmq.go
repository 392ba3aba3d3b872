package servers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// RabbitMQ is a RabbitMQ node of its own: AMQP, the management API (stats
// every second, as the pollers' tests expect) and Prometheus on free
// loopback ports, with an epmd of its own on another free port, its own
// node name, distribution port and Erlang cookie (HOME is its temporary
// directory). So it never meets a RabbitMQ the machine runs, and nothing
// of /etc/rabbitmq is read: the configuration, plugins file and env file
// are all in its directory. It runs as the calling user (Debian's
// /usr/sbin wrappers, which switch to the rabbitmq user, are bypassed).
// The user guest/guest may log in from loopback.
type RabbitMQ struct{}

func (*RabbitMQ) Name() string { return "rabbitmq" }

func (*RabbitMQ) Vars() []string { return []string{need.EnvRabbitMQAMQP, need.EnvRabbitMQMgmt} }

// rabbitmqServer is the broker's own start script: Debian's is in
// /usr/lib/rabbitmq/bin (its /usr/sbin one is a wrapper that switches user);
// elsewhere the one on PATH is the script itself.
var (
	rabbitmqServer = Tool{Names: []string{"rabbitmq-server"}, Package: "rabbitmq-server"}
	rabbitmqEPMD   = Tool{Names: []string{"epmd"}, Dirs: []string{"/usr/lib/erlang/bin", "/usr/lib/erlang/erts-*/bin"}, Package: "erlang-base"}
)

func (*RabbitMQ) Tools() []Tool { return []Tool{rabbitmqServer, rabbitmqEPMD} }

func (*RabbitMQ) Prepare(context.Context, *Env) error { return nil }

// rabbitmqScript returns the broker's start script, not a wrapper of it.
func rabbitmqScript() (string, error) {
	const debian = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return rabbitmqServer.Find()
}

// rabbitmqConf is the broker's configuration: everything on loopback,
// statistics every second and kept a minute (the management API's rates
// and message_stats then move within a second of activity).
const rabbitmqConf = `listeners.tcp.default = 127.0.0.1:%d
management.tcp.ip = 127.0.0.1
management.tcp.port = %d
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = %d
collect_statistics_interval = 1000
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.detailed.10 = 1
loopback_users.guest = true
log.console = true
log.console.level = info
log.file = false
`

// Start runs epmd and the broker on five free ports (AMQP, management,
// Prometheus, epmd, distribution) and waits until the management API
// answers and AMQP accepts connections. A cold start takes about 10 s.
func (r *RabbitMQ) Start(ctx context.Context, env *Env) (*Server, error) {
	script, err := rabbitmqScript()
	if err != nil {
		return nil, err
	}
	epmd, err := rabbitmqEPMD.Find()
	if err != nil {
		return nil, err
	}
	return withPorts(5, func(ports []int) (*Server, error) {
		amqpPort, mgmtPort, promPort, epmdPort, distPort := ports[0], ports[1], ports[2], ports[3], ports[4]
		dir, err := env.tempDir("rabbitmq")
		if err != nil {
			return nil, err
		}
		s := &Server{Name: r.Name(), Dir: dir, stopTO: env.StopTimeout}
		fail := func(err error) (*Server, error) { _ = s.Stop(); return nil, err }

		files := map[string]string{
			"rabbitmq.conf":     fmt.Sprintf(rabbitmqConf, amqpPort, mgmtPort, promPort),
			"enabled_plugins":   "[rabbitmq_management,rabbitmq_prometheus].\n",
			"rabbitmq-env.conf": "# empty: nothing is read from /etc/rabbitmq\n",
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				return fail(err)
			}
		}
		for _, d := range []string{"mnesia", "log", "home"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
				return fail(err)
			}
		}
		erlEnv := []string{
			"HOME=" + filepath.Join(dir, "home"), // its own .erlang.cookie
			"ERL_EPMD_ADDRESS=127.0.0.1",
			"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
		}

		// epmd first, so that the node registers with this one and does
		// not start a daemon of its own.
		ecmd := exec.Command(epmd, "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
		ecmd.Env = append(os.Environ(), erlEnv...)
		ecmd.Dir = dir
		ep, err := startProc("epmd", ecmd, filepath.Join(dir, "epmd.log"))
		if err != nil {
			return fail(err)
		}
		s.procs = append(s.procs, ep)
		if err := waitReady(ctx, env.StartTimeout, ep, func(ctx context.Context) error {
			return dialable(ctx, addr(epmdPort))
		}); err != nil {
			return fail(errStart("RabbitMQ's epmd", ep, err))
		}

		cmd := exec.Command(script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), erlEnv...)
		cmd.Env = append(cmd.Env,
			fmt.Sprintf("RABBITMQ_NODENAME=cartograph-test-%d-%d@localhost", os.Getpid(), amqpPort),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
			"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
			"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
			"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
			"RABBITMQ_LOGS=-",
			// The distribution listens on loopback only.
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		)
		p, err := startProc("rabbitmq-server", cmd, filepath.Join(dir, "rabbitmq.log"))
		if err != nil {
			return fail(err)
		}
		// The script traps SIGTERM and stops the node properly; on
		// SIGINT it would do the same but exit 130.
		p.stopSig = syscall.SIGTERM
		s.procs = append(s.procs, p)

		mgmt := fmt.Sprintf("http://127.0.0.1:%d", mgmtPort)
		var version string
		err = waitReady(ctx, env.StartTimeout, p, func(ctx context.Context) error {
			body, err := httpGet(ctx, mgmt+"/api/overview", "guest", "guest")
			if err != nil {
				return err
			}
			var o struct {
				RabbitMQVersion string `json:"rabbitmq_version"`
			}
			if err := json.Unmarshal([]byte(body), &o); err != nil {
				return err
			}
			version = o.RabbitMQVersion
			if err := dialable(ctx, addr(amqpPort)); err != nil {
				return err
			}
			_, err = httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort), "", "")
			return err
		})
		if err != nil {
			if strings.Contains(strings.ToLower(p.tail(200)), "eaddrinuse") {
				err = fmt.Errorf("%w: %v", errPortTaken, err)
			}
			return fail(errStart("RabbitMQ", p, err))
		}
		s.Summary = fmt.Sprintf("RabbitMQ %s, AMQP %s, management %s, prometheus %s (epmd %d, distribution %d)",
			version, addr(amqpPort), mgmt, addr(promPort), epmdPort, distPort)
		s.Vars = []EnvVar{
			{need.EnvRabbitMQAMQP, fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", amqpPort)},
			{need.EnvRabbitMQMgmt, fmt.Sprintf("http://guest:guest@127.0.0.1:%d", mgmtPort)},
		}
		return s, nil
	})
}
