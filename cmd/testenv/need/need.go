// Package need gives a test the servers and programs it runs against, as
// cmd/testenv provides them: each through one environment variable. When a
// variable is unset the test fails (never skips) with a message that names
// what is missing and the two ways to get it: run the tests under
// cmd/testenv, which starts its own, or set the variable to one you run.
//
// The functions only read the environment; they keep no state and are safe
// for concurrent use. Whether the server answers is for the test to find
// out, with its own error.
package need

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
)

// The variables cmd/testenv sets for the command it runs, one per server or
// program; docs/development.md lists their values (and the Form of each
// variable in this package says it too).
const (
	EnvClickHouse     = "CARTOGRAPH_TEST_CLICKHOUSE"
	EnvClickHouseHTTP = "CARTOGRAPH_TEST_CLICKHOUSE_HTTP"
	EnvRabbitMQAMQP   = "CARTOGRAPH_TEST_RABBITMQ_AMQP"
	EnvRabbitMQMgmt   = "CARTOGRAPH_TEST_RABBITMQ_MGMT"
	EnvRedis          = "CARTOGRAPH_TEST_REDIS"
	EnvPostgres       = "CARTOGRAPH_TEST_POSTGRES"
	EnvNATSServer     = "CARTOGRAPH_TEST_NATS_SERVER"
	EnvChromium       = "CARTOGRAPH_TEST_CHROMIUM"
	EnvAlertmanager   = "CARTOGRAPH_TEST_ALERTMANAGER"
	EnvHotROD         = "CARTOGRAPH_TEST_HOTROD"
	EnvHelm           = "CARTOGRAPH_TEST_HELM"
	EnvOtelcolLB      = "CARTOGRAPH_TEST_OTELCOL_LB"
	// EnvClickHouseCluster is <cluster>/<host:port>,<host:port>,...: a
	// cluster's name in remote_servers and the native address of each
	// of its nodes.
	EnvClickHouseCluster = "CARTOGRAPH_TEST_CLICKHOUSE_CLUSTER"
)

// TestCommand is how to run the tests so that every variable is set.
const TestCommand = "go run ./cmd/testenv -- go test ./..."

// ErrMissing matches (errors.Is) every error of a variable that is unset.
var ErrMissing = errors.New("not provided")

// missingError is the error of unset variables: its text is the message
// alone, and it is ErrMissing.
type missingError string

func (e missingError) Error() string      { return string(e) }
func (missingError) Is(target error) bool { return target == ErrMissing }

// variable is one environment variable a test reads: its name, what it names,
// and how its value is written.
type variable struct {
	Name string // e.g. CARTOGRAPH_TEST_CLICKHOUSE
	Form string // e.g. "host:port of its native protocol"
	// Example is a value that would do on a typical machine.
	Example string
	// parse checks a value; nil accepts any non-empty one.
	parse func(string) error
}

// requirement is one thing tests need: what it is and its variables.
type requirement struct {
	What string // e.g. "ClickHouse 26.7": said in the message
	// Verb says how cmd/testenv provides it: "starts its own" for servers,
	// "installs or builds it" for programs.
	Verb string
	Vars []variable
}

// The requirements, one per server or program. They are never changed.
var (
	clickhouseReq = requirement{What: "ClickHouse 26.7", Verb: "starts its own", Vars: []variable{
		{Name: EnvClickHouse, Form: "host:port of its native protocol", Example: "127.0.0.1:9000", parse: hostPort},
		{Name: EnvClickHouseHTTP, Form: "host:port of its HTTP interface", Example: "127.0.0.1:8123", parse: hostPort},
	}}
	rabbitmqReq = requirement{What: "RabbitMQ with the management plugin (statistics every second)", Verb: "starts its own", Vars: []variable{
		{Name: EnvRabbitMQAMQP, Form: "its AMQP URL with user and password", Example: "amqp://guest:guest@127.0.0.1:5672/", parse: urlWithScheme("amqp", "amqps")},
		{Name: EnvRabbitMQMgmt, Form: "its management API URL with user and password", Example: "http://guest:guest@127.0.0.1:15672", parse: urlWithScheme("http", "https")},
	}}
	redisReq = requirement{What: "Redis", Verb: "starts its own", Vars: []variable{
		{Name: EnvRedis, Form: "host:port of a Redis the tests may write keys to", Example: "127.0.0.1:6379", parse: hostPort},
	}}
	postgresReq = requirement{What: "PostgreSQL", Verb: "starts its own", Vars: []variable{
		{Name: EnvPostgres, Form: "a connection URL", Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", parse: urlWithScheme("postgres", "postgresql")},
	}}
	natsServerReq = requirement{What: "the nats-server program (2.9 or later; tests start their own servers)", Verb: "installs it", Vars: []variable{
		{Name: EnvNATSServer, Form: "the path of nats-server", Example: "/usr/sbin/nats-server", parse: executable},
	}}
	chromiumReq = requirement{What: "Chromium (the browser tests drive it headless)", Verb: "installs it", Vars: []variable{
		{Name: EnvChromium, Form: "the path of chromium", Example: "/usr/bin/chromium", parse: executable},
	}}
	alertmanagerReq = requirement{What: "Prometheus Alertmanager v0.35.0", Verb: "builds it", Vars: []variable{
		{Name: EnvAlertmanager, Form: "the path of an alertmanager binary", Example: "$HOME/.cache/cartograph/alertmanager-v0.35.0/alertmanager", parse: executable},
	}}
	hotrodReq = requirement{What: "Jaeger's HotROD demo (the version in ingest/corpus/testdata/hotrod/go.mod)", Verb: "builds it", Vars: []variable{
		{Name: EnvHotROD, Form: "the path of a hotrod binary", Example: "$HOME/go/bin/hotrod", parse: executable},
	}}
	helmReq = requirement{What: "Helm 4 (v4.3.2; the chart tests render deploy/helm/cartograph with it)", Verb: "builds it", Vars: []variable{
		{Name: EnvHelm, Form: "the path of a helm 4 binary", Example: "$HOME/.cache/cartograph/helm-v4.3.2/helm", parse: executable},
	}}
	clickhouseClusterReq = requirement{What: "a ClickHouse 26.7 cluster of two shards (remote_servers; Distributed tables)", Verb: "starts its own", Vars: []variable{
		{Name: EnvClickHouseCluster, Form: "the cluster's name, a slash and the native host:port of each node, comma-separated", Example: "cartograph_test/127.0.0.1:9000,127.0.0.1:9001", parse: clusterSpec},
	}}
	otelcolLBReq = requirement{What: "an OpenTelemetry Collector v0.158.0 with the load_balancing exporter (the scale-out tests' load balancer)", Verb: "builds it", Vars: []variable{
		{Name: EnvOtelcolLB, Form: "the path of an otelcol binary with the otlp receiver and the load_balancing exporter", Example: "$HOME/.cache/cartograph/otelcol-lb-v0.158.0/otelcol-lb", parse: executable},
	}}
)

// Lookup returns the values of r's variables in order, or an error that
// says what is missing and how to get it (one that is ErrMissing when a
// variable is unset).
func (r requirement) Lookup() ([]string, error) {
	vals := make([]string, len(r.Vars))
	var unset []string
	for i, v := range r.Vars {
		vals[i] = os.Getenv(v.Name)
		if vals[i] == "" {
			unset = append(unset, v.Name)
		}
	}
	if len(unset) > 0 {
		return nil, missingError(r.Message(unset))
	}
	for i, v := range r.Vars {
		if v.parse == nil {
			continue
		}
		if err := v.parse(vals[i]); err != nil {
			return nil, fmt.Errorf("needs %s: %s=%q is not %s: %w", r.What, v.Name, vals[i], v.Form, err)
		}
	}
	return vals, nil
}

// Message is the text of a test failure when the variables unset are not
// set: what is needed, and the two ways to get it.
func (r requirement) Message(unset []string) string {
	var set []string
	for _, v := range r.Vars {
		set = append(set, fmt.Sprintf("%s to %s (e.g. %s)", v.Name, v.Form, v.Example))
	}
	verb := "is"
	if len(unset) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("needs %s (%s %s unset): run the tests as `%s`, which %s, or set %s",
		r.What, strings.Join(unset, " and "), verb, TestCommand, r.Verb, strings.Join(set, " and "))
}

// get fails tb with r's message unless all its variables are set.
func get(tb testing.TB, r requirement) []string {
	tb.Helper()
	vals, err := r.Lookup()
	if err != nil {
		tb.Fatal(err)
	}
	return vals
}

// ClickHouse returns the native and HTTP host:port of the test ClickHouse
// (26.7; async_insert is on by default there), or fails tb. The tests share
// it: each makes a database of its own.
func ClickHouse(tb testing.TB) (native, http string) {
	tb.Helper()
	v := get(tb, clickhouseReq)
	return v[0], v[1]
}

// LookupClickHouse is ClickHouse for TestMain and package variables: the
// error says what is missing.
func LookupClickHouse() (native, http string, err error) {
	v, err := clickhouseReq.Lookup()
	if err != nil {
		return "", "", err
	}
	return v[0], v[1], nil
}

// Rabbit is a RabbitMQ the tests share: each declares queues of its own.
type Rabbit struct {
	AMQP string // amqp://user:password@host:port/
	// Management is the management API's base URL without user and
	// password, e.g. http://127.0.0.1:15672.
	Management     string
	User, Password string // the management API's, from its variable
}

// RabbitMQ returns the test RabbitMQ, or fails tb.
func RabbitMQ(tb testing.TB) Rabbit {
	tb.Helper()
	r, err := LookupRabbitMQ()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// LookupRabbitMQ is RabbitMQ for TestMain: the error says what is missing.
func LookupRabbitMQ() (Rabbit, error) {
	v, err := rabbitmqReq.Lookup()
	if err != nil {
		return Rabbit{}, err
	}
	u, _ := url.Parse(v[1]) // checked by Lookup
	r := Rabbit{AMQP: v[0], User: u.User.Username()}
	r.Password, _ = u.User.Password()
	u.User = nil
	r.Management = strings.TrimSuffix(u.String(), "/")
	return r, nil
}

// Redis returns the host:port of the test Redis, or fails tb.
func Redis(tb testing.TB) string { tb.Helper(); return get(tb, redisReq)[0] }

// Postgres returns the connection URL of the test PostgreSQL, or fails tb.
func Postgres(tb testing.TB) string { tb.Helper(); return get(tb, postgresReq)[0] }

// NATSServer returns the path of nats-server, or fails tb. Tests start
// their own servers with it, on free ports.
func NATSServer(tb testing.TB) string { tb.Helper(); return get(tb, natsServerReq)[0] }

// Chromium returns the path of the Chromium to drive headless, or fails tb.
func Chromium(tb testing.TB) string { tb.Helper(); return get(tb, chromiumReq)[0] }

// Alertmanager returns the path of an Alertmanager binary, or fails tb.
func Alertmanager(tb testing.TB) string { tb.Helper(); return get(tb, alertmanagerReq)[0] }

// HotROD returns the path of Jaeger's HotROD demo binary, or fails tb.
func HotROD(tb testing.TB) string { tb.Helper(); return get(tb, hotrodReq)[0] }

// Helm returns the path of a Helm 4 binary, or fails tb.
func Helm(tb testing.TB) string { tb.Helper(); return get(tb, helmReq)[0] }

// ClickHouseCluster returns the name and the nodes' native host:port of
// the test ClickHouse cluster (two shards), or fails tb. Tests share it:
// each makes a database of its own.
func ClickHouseCluster(tb testing.TB) (name string, nodes []string) {
	tb.Helper()
	name, nodes, _ = parseCluster(get(tb, clickhouseClusterReq)[0])
	return name, nodes
}

// parseCluster splits <name>/<host:port>,... .
func parseCluster(s string) (string, []string, error) {
	name, list, ok := strings.Cut(s, "/")
	if !ok || name == "" || list == "" {
		return "", nil, errors.New("want <cluster>/<host:port>,<host:port>")
	}
	nodes := strings.Split(list, ",")
	for _, n := range nodes {
		if err := hostPort(n); err != nil {
			return "", nil, fmt.Errorf("node %q: %w", n, err)
		}
	}
	return name, nodes, nil
}

func clusterSpec(s string) error { _, _, err := parseCluster(s); return err }

// OtelcolLB returns the path of an OpenTelemetry Collector with the otlp
// receiver and the load_balancing exporter, or fails tb. Tests run their
// own, with a configuration of their own.
func OtelcolLB(tb testing.TB) string { tb.Helper(); return get(tb, otelcolLBReq)[0] }

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" || port == "" {
		return errors.New("host or port is empty")
	}
	return nil
}

func urlWithScheme(schemes ...string) func(string) error {
	return func(s string) error {
		u, err := url.Parse(s)
		if err != nil {
			return err
		}
		for _, sc := range schemes {
			if u.Scheme == sc && u.Host != "" {
				return nil
			}
		}
		return fmt.Errorf("want a %s:// URL with a host", strings.Join(schemes, ":// or "))
	}
}

func executable(s string) error {
	fi, err := os.Stat(s)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
