package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/ingest/brokers"
)

// fileConfig is the YAML file given with --config: detector thresholds,
// broker pollers and Alertmanager. Every key is optional; unknown keys are
// errors, so a typo does not silently keep a default.
type fileConfig struct {
	Detectors    detectorsConfig    `yaml:"detectors"`
	Brokers      []brokerConfig     `yaml:"brokers"`
	Alertmanager alertmanagerConfig `yaml:"alertmanager"`
}

// alertmanagerConfig adds to --alertmanager-url: static labels, a bearer
// token from the environment, the re-send interval.
type alertmanagerConfig struct {
	URLs           []string          `yaml:"urls"`
	Labels         map[string]string `yaml:"labels"`
	BearerTokenEnv string            `yaml:"bearer_token_env"`
	Interval       time.Duration     `yaml:"interval"`
	ExternalURL    string            `yaml:"external_url"`
}

type detectorsConfig struct {
	// Hold is how long a condition holds before its finding fires
	// (default: one evaluation interval); KeepFiring how long a firing
	// finding outlives its condition (default: two intervals).
	Hold        time.Duration             `yaml:"hold"`
	KeepFiring  time.Duration             `yaml:"keep_firing"`
	RetryStorm  detect.RetryStormOptions  `yaml:"retry_storm"`
	OpenCircuit detect.OpenCircuitOptions `yaml:"open_circuit"`
	ConsumerLag detect.ConsumerLagOptions `yaml:"consumer_lag"`
	Bottleneck  detect.BottleneckOptions  `yaml:"bottleneck"`
	// Review holds the thresholds of the communication review
	// (/api/v1/review): observations, not findings.
	Review review.Options `yaml:"review"`
}

// brokerConfig is one broker to poll. Secrets are read from the environment
// variables named by the *_env keys (or given inline, discouraged); they
// never appear in logs, the API or the UI.
type brokerConfig struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"` // kafka, rabbitmq or nats
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`

	// kafka
	Brokers         []string `yaml:"brokers"`
	Groups          []string `yaml:"groups"`
	SASLUser        string   `yaml:"sasl_user"`
	SASLPassword    string   `yaml:"sasl_password"`
	SASLPasswordEnv string   `yaml:"sasl_password_env"`

	// rabbitmq (management API) and nats (monitoring endpoint)
	URL         string   `yaml:"url"`
	Username    string   `yaml:"username"`
	Password    string   `yaml:"password"`
	PasswordEnv string   `yaml:"password_env"`
	VHost       string   `yaml:"vhost"`
	Queues      []string `yaml:"queues"`
	TokenEnv    string   `yaml:"token_env"`
}

// loadFileConfig reads and validates path; "" gives the zero config.
func loadFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	if err := fc.Validate(); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// Validate checks ranges and that every broker is complete.
func (fc fileConfig) Validate() error {
	var errs []error
	d := fc.Detectors
	if d.Hold < 0 || d.KeepFiring < 0 {
		errs = append(errs, errors.New("detectors: hold and keep_firing must not be negative"))
	}
	for name, v := range map[string]float64{
		"retry_storm.budget": d.RetryStorm.Budget, "open_circuit.min_unanswered_ratio": d.OpenCircuit.MinUnansweredRatio,
		"open_circuit.fast_ratio": d.OpenCircuit.FastRatio, "open_circuit.half_open_max_answered": d.OpenCircuit.HalfOpenMaxAnswered,
		"consumer_lag.trace_rate_shortfall": d.ConsumerLag.TraceRateShortfall,
		"bottleneck.min_share":              d.Bottleneck.MinShare, "bottleneck.critical_share": d.Bottleneck.CriticalShare,
	} {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("detectors.%s = %g: a ratio in [0,1]", name, v))
		}
	}
	for _, err := range []error{d.RetryStorm.Validate(), d.OpenCircuit.Validate(), d.ConsumerLag.Validate(), d.Bottleneck.Validate(), d.Review.Validate()} {
		if err != nil {
			errs = append(errs, fmt.Errorf("detectors: %w", err))
		}
	}
	if d.RetryStorm.CriticalAmplification < 0 || d.ConsumerLag.MaxSeconds < 0 || d.ConsumerLag.MaxDrainSeconds < 0 || d.OpenCircuit.FastAbsolute < 0 {
		errs = append(errs, errors.New("detectors: thresholds must not be negative"))
	}
	names := map[string]bool{}
	for i, b := range fc.Brokers {
		where := fmt.Sprintf("brokers[%d]", i)
		if b.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		} else if names[b.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name %q", where, b.Name))
		}
		names[b.Name] = true
		if b.Interval < 0 || b.Timeout < 0 || (b.Interval > 0 && b.Timeout > b.Interval) {
			errs = append(errs, fmt.Errorf("%s: interval and timeout must be positive, timeout at most the interval", where))
		}
		switch b.Kind {
		case "kafka":
			if len(b.Brokers) == 0 {
				errs = append(errs, fmt.Errorf("%s: kafka needs brokers", where))
			}
		case "rabbitmq", "nats":
			if b.URL == "" {
				errs = append(errs, fmt.Errorf("%s: %s needs url", where, b.Kind))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q: want kafka, rabbitmq or nats", where, b.Kind))
		}
	}
	return errors.Join(errs...)
}

// secret returns the inline value, else the named environment variable.
func secret(inline, env string, getenv func(string) string) string {
	if inline != "" {
		return inline
	}
	if env != "" {
		return getenv(env)
	}
	return ""
}

// brokerSources builds the pollers of the config file and of the flags.
// The returned closer releases their clients.
func brokerSources(fc fileConfig, cfg config, getenv func(string) string) ([]brokers.Source, func(), error) {
	list := slices.Clone(fc.Brokers)
	if len(cfg.KafkaBrokers) > 0 {
		list = append(list, brokerConfig{Name: "kafka", Kind: "kafka", Brokers: cfg.KafkaBrokers, Groups: cfg.KafkaGroups,
			SASLUser: cfg.KafkaSASLUser, SASLPasswordEnv: envName("kafka-sasl-password")})
	}
	if cfg.RabbitMQURL != "" {
		list = append(list, brokerConfig{Name: "rabbitmq", Kind: "rabbitmq", URL: cfg.RabbitMQURL, Username: cfg.RabbitMQUser,
			PasswordEnv: envName("rabbitmq-password"), VHost: cfg.RabbitMQVHost})
	}
	if cfg.NATSMonitorURL != "" {
		list = append(list, brokerConfig{Name: "nats", Kind: "nats", URL: cfg.NATSMonitorURL})
	}
	var (
		out     []brokers.Source
		closers []func()
	)
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, b := range list {
		var (
			p   brokers.Poller
			err error
		)
		switch b.Kind {
		case "kafka":
			var k *brokers.Kafka
			k, err = brokers.NewKafka(brokers.KafkaOptions{Brokers: b.Brokers, Groups: b.Groups, SASLUser: b.SASLUser,
				SASLPassword: secret(b.SASLPassword, b.SASLPasswordEnv, getenv)})
			if err == nil {
				closers = append(closers, func() { _ = k.Close() })
				p = k
			}
		case "rabbitmq":
			p, err = brokers.NewRabbitMQ(brokers.RabbitMQOptions{URL: b.URL, Username: b.Username,
				Password: secret(b.Password, b.PasswordEnv, getenv), VHost: b.VHost, Queues: b.Queues})
		case "nats":
			p, err = brokers.NewNATS(brokers.NATSOptions{URL: b.URL, Username: b.Username,
				Password: secret(b.Password, b.PasswordEnv, getenv), Token: secret("", b.TokenEnv, getenv)})
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("broker %q: %w", b.Name, err)
		}
		interval := b.Interval
		if interval == 0 {
			interval = cfg.BrokerPollInterval
		}
		out = append(out, brokers.Source{Name: b.Name, Poller: p, Interval: interval, Timeout: b.Timeout})
	}
	return out, closeAll, nil
}

// splitList splits a comma-separated flag value, dropping empty parts.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
