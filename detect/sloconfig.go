package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// SLI is what an objective counts as a good request.
type SLI string

// SLIs.
const (
	// SLIAvailability: a request is good when it does not fail.
	SLIAvailability SLI = "availability"
	// SLILatency: a request is good when it takes at most the objective's
	// threshold.
	SLILatency SLI = "latency"
)

// Defaults of SLOConfig.
const (
	DefaultSLOPeriod      = 30 * 24 * time.Hour
	DefaultSLOMinRequests = 10
	// DefaultSLOMaxObjectives bounds the objectives one file may hold
	// (collector flag --slo-max-objectives).
	DefaultSLOMaxObjectives = 1_000
)

// DefaultBurnWindows are the multi-window, multi-burn-rate alerts of the
// Google SRE workbook (chapter 5, "Alerting on SLOs"): page when the
// error budget burns 14.4 times as fast as the period allows over the
// last hour and the last 5 minutes (2% of a 30-day budget in an hour), or
// 6 times as fast over 6 hours and 30 minutes (5% in 6 hours). The short
// window makes the alert stop soon after the burn stops. The fast pair is
// critical, the slow pair a warning: both mean the budget goes within
// days, the fast one within about two.
var DefaultBurnWindows = []BurnWindow{
	{Long: Duration(time.Hour), Short: Duration(5 * time.Minute), Factor: 14.4, Severity: finding.SeverityCritical},
	{Long: Duration(6 * time.Hour), Short: Duration(30 * time.Minute), Factor: 6, Severity: finding.SeverityWarning},
}

// Duration is a time.Duration in YAML that also takes days ("30d").
type Duration time.Duration

// UnmarshalText parses a Go duration ("1h", "5m") or whole days ("30d").
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return fmt.Errorf("duration %q: days must be a positive whole number", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// SLOConfig is the file given with --slo-config: service level objectives
// per entry point, and the burn-rate windows they are judged over. It is
// a value, owned by whoever holds it.
type SLOConfig struct {
	// Period is the SLO period whose error budget the burn rates are
	// relative to (default 30d). An objective may set its own.
	Period Duration `yaml:"period"`
	// Windows are the long/short window pairs judged (default
	// DefaultBurnWindows). Scaled-down windows are for tests and demos.
	Windows []BurnWindow `yaml:"windows"`
	// MinRequests is how many requests a pair's short window must hold
	// before the pair is judged (default 10): one failure among three
	// requests is no page.
	MinRequests int `yaml:"min_requests"`
	// Objectives are the SLOs.
	Objectives []Objective `yaml:"objectives"`
}

// BurnWindow is one pair of windows: it fires when the error budget burns
// more than Factor times as fast as the period allows over both.
type BurnWindow struct {
	Long     Duration         `yaml:"long"`
	Short    Duration         `yaml:"short"`
	Factor   float64          `yaml:"factor"`
	Severity finding.Severity `yaml:"severity"`
}

// Name is the pair's name in evidence: "1h/5m".
func (w BurnWindow) Name() string { return fmtWindow(w.Long) + "/" + fmtWindow(w.Short) }

func fmtWindow(d Duration) string {
	v := time.Duration(d)
	switch {
	case v >= 24*time.Hour && v%(24*time.Hour) == 0:
		return strconv.Itoa(int(v/(24*time.Hour))) + "d"
	case v >= time.Hour && v%time.Hour == 0:
		return strconv.Itoa(int(v/time.Hour)) + "h"
	case v >= time.Minute && v%time.Minute == 0:
		return strconv.Itoa(int(v/time.Minute)) + "m"
	}
	return v.String()
}

// Objective is one SLO of one entry point: the calls the outside world
// (the client node: root server spans) makes to Service.
type Objective struct {
	// Name identifies the objective in findings and metrics (default
	// "<service>-<sli>").
	Name string `yaml:"name"`
	// Service is the entry point's service.name; Namespace its
	// service.namespace (empty: any namespace, their calls added up).
	Service   string `yaml:"service"`
	Namespace string `yaml:"namespace"`
	// Operation, when set, narrows the objective to one entry operation:
	// the root server spans of the service with this span name ("GET
	// /checkout", "shop.Cart/Checkout"), counted as they arrive rather than
	// from the entry point's edge buckets (SLOBurn.ObserveSpans).
	Operation string `yaml:"operation"`
	// SLI is availability or latency.
	SLI SLI `yaml:"sli"`
	// Target is the share of good requests the objective promises, in
	// percent: 99.9.
	Target float64 `yaml:"target"`
	// Threshold is, for a latency objective, the latency a good request
	// takes at most.
	Threshold Duration `yaml:"threshold"`
	// Period overrides the file's period.
	Period Duration `yaml:"period"`
}

// ratio is the objective as a share of good requests: 0.999.
func (o Objective) ratio() float64 { return o.Target / 100 }

// budget is the share of requests the objective allows to be bad.
func (o Objective) budget() float64 { return 1 - o.ratio() }

// LoadSLOConfig reads and validates the objectives file at path; max
// bounds how many objectives it may hold (0: DefaultSLOMaxObjectives).
func LoadSLOConfig(path string, max int) (SLOConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return SLOConfig{}, fmt.Errorf("slo config: %w", err)
	}
	c, err := ParseSLOConfig(b, max)
	if err != nil {
		return SLOConfig{}, fmt.Errorf("slo config %s: %w", path, err)
	}
	return c, nil
}

// ParseSLOConfig decodes and validates an objectives file: unknown keys
// are errors, so that a typo does not silently keep a default. The
// result has its defaults filled in.
func ParseSLOConfig(b []byte, max int) (SLOConfig, error) {
	var c SLOConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return SLOConfig{}, err
	}
	c = c.withDefaults()
	if err := c.Validate(max); err != nil {
		return SLOConfig{}, err
	}
	return c, nil
}

func (c SLOConfig) withDefaults() SLOConfig {
	if c.Period == 0 {
		c.Period = Duration(DefaultSLOPeriod)
	}
	if len(c.Windows) == 0 {
		c.Windows = append([]BurnWindow(nil), DefaultBurnWindows...)
	}
	for i := range c.Windows {
		if c.Windows[i].Severity == 0 {
			c.Windows[i].Severity = finding.SeverityCritical
		}
	}
	if c.MinRequests == 0 {
		c.MinRequests = DefaultSLOMinRequests
	}
	for i := range c.Objectives {
		o := &c.Objectives[i]
		if o.Period == 0 {
			o.Period = c.Period
		}
		if o.Name == "" && o.Service != "" {
			o.Name = o.Service + "-" + string(o.SLI)
			if o.Operation != "" {
				o.Name = o.Service + " " + o.Operation + "-" + string(o.SLI)
			}
		}
	}
	return c
}

// Validate reports every problem of c (with its defaults filled), each
// naming the objective or window at fault. max bounds the objectives (0:
// DefaultSLOMaxObjectives).
func (c SLOConfig) Validate(max int) error {
	if max <= 0 {
		max = DefaultSLOMaxObjectives
	}
	var errs []error
	if len(c.Objectives) == 0 {
		errs = append(errs, errors.New("no objectives"))
	}
	if len(c.Objectives) > max {
		errs = append(errs, fmt.Errorf("%d objectives, more than --slo-max-objectives %d", len(c.Objectives), max))
	}
	if c.MinRequests < 0 {
		errs = append(errs, errors.New("min_requests must not be negative"))
	}
	for i, w := range c.Windows {
		at := fmt.Sprintf("windows[%d]", i)
		switch {
		case w.Long <= 0 || w.Short <= 0:
			errs = append(errs, fmt.Errorf("%s: long and short must be positive durations", at))
		case w.Short >= w.Long:
			errs = append(errs, fmt.Errorf("%s: short %v must be shorter than long %v", at, time.Duration(w.Short), time.Duration(w.Long)))
		}
		if !(w.Factor > 0) || math.IsInf(w.Factor, 0) {
			errs = append(errs, fmt.Errorf("%s: factor %v must be a positive number", at, w.Factor))
		}
	}
	names := map[string]int{}
	for i, o := range c.Objectives {
		at := fmt.Sprintf("objectives[%d]", i)
		if o.Name != "" {
			at += " (" + o.Name + ")"
		}
		if o.Service == "" {
			errs = append(errs, fmt.Errorf("%s: service is required: the entry point's service.name", at))
		}
		if j, dup := names[o.Name]; dup && o.Name != "" {
			errs = append(errs, fmt.Errorf("%s: name %q is also objectives[%d]'s", at, o.Name, j))
		}
		names[o.Name] = i
		if !(o.Target > 0 && o.Target < 100) {
			errs = append(errs, fmt.Errorf("%s: target %v is out of range: a percentage of good requests above 0 and below 100 (99.9)", at, o.Target))
		}
		switch o.SLI {
		case SLIAvailability:
			if o.Threshold != 0 {
				errs = append(errs, fmt.Errorf("%s: threshold is for latency objectives only", at))
			}
		case SLILatency:
			if o.Threshold <= 0 {
				errs = append(errs, fmt.Errorf("%s: a latency objective needs a positive threshold (300ms)", at))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: sli %q is neither availability nor latency", at, o.SLI))
		}
		if o.Period <= 0 {
			errs = append(errs, fmt.Errorf("%s: period must be positive", at))
		}
		for _, w := range c.Windows {
			if w.Long > o.Period {
				errs = append(errs, fmt.Errorf("%s: window %s is longer than the period %v", at, w.Name(), time.Duration(o.Period)))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// longest is the longest window of c.
func (c SLOConfig) longest() time.Duration {
	var l time.Duration
	for _, w := range c.Windows {
		l = max(l, time.Duration(w.Long))
	}
	return l
}
