// Package alertmanager pushes findings to Prometheus Alertmanager over its
// API v2 (POST /api/v2/alerts), the way Prometheus's notifier does: every
// firing finding is re-sent on each push with an endsAt a few intervals
// ahead, so that if cartograph dies its alerts resolve by themselves; a
// resolved finding is sent a few more times with endsAt = the time it
// resolved. With several Alertmanagers (a high-availability cluster) every
// push goes to each of them.
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// FindingsSource gives the pusher the findings to send. *detect.Engine
// implements it. Findings must be safe for concurrent use; the pusher does
// not modify what it returns.
type FindingsSource interface {
	Findings(state finding.State) []finding.Finding
}

// IncidentSource tells which incident holds a finding (detect/incident's
// Tracker). IncidentOf must be safe for concurrent use.
type IncidentSource interface {
	IncidentOf(findingID string) (finding.Incident, bool)
}

// Errors.
var (
	// ErrRejected wraps a push that Alertmanager refused with a 4xx status
	// other than 429: the request itself is wrong, so it is not retried.
	ErrRejected = errors.New("alertmanager: push rejected")
	// ErrUnavailable wraps a push that failed on network errors, 5xx or
	// 429 responses after every retry.
	ErrUnavailable = errors.New("alertmanager: push failed")
)

// Options configure a Pusher. Zero fields take the documented defaults.
type Options struct {
	// URLs are Alertmanager base URLs (e.g. http://127.0.0.1:9093, or with
	// the --web.route-prefix path). Every push goes to each. Required.
	URLs []string
	// Source gives the findings. Required.
	Source FindingsSource
	// Incidents, when set, labels each alert with the incident holding its
	// finding (incident_id) and that incident's first root cause
	// (root_cause), as they were when the finding was first sent: labels
	// are an alert's identity, and a finding stays one alert series for
	// its whole life. A firing finding no incident holds yet waits for
	// its incident up to MaxIncidentWait pushes. The incident's current
	// id and root causes are annotations (incident, root_causes). The
	// finding's owner (finding.Finding.Owner) is pinned the same way as
	// the owner label, whether or not incidents are set; its current
	// owner is the owner annotation.
	Incidents IncidentSource
	// MaxIncidentWait is how many pushes a firing finding waits for its
	// incident before it is sent labelled as an incident of its own
	// (default 2).
	MaxIncidentWait int
	// Interval is how often firing alerts are re-sent (default 30s).
	Interval time.Duration
	// ResolveTimeout is how far ahead of each push a firing alert's endsAt
	// is set (default 4 Intervals): an alert that stops being re-sent
	// resolves by itself after it. Must be longer than Interval.
	ResolveTimeout time.Duration
	// Timeout bounds one POST (default 10s), and the final flush when Run
	// stops.
	Timeout time.Duration
	// MaxRetries is how many times a push to one URL is retried after a
	// network error, a 5xx or a 429 (default 3; negative: never).
	MaxRetries int
	// Backoff is the wait before the first retry (default 500ms); it
	// doubles on each retry, is capped at Interval, and is jittered to
	// between half and all of it.
	Backoff time.Duration
	// ResolvedPushes is how many pushes carry a resolved alert, so that it
	// lands even if a push fails (default 3).
	ResolvedPushes int
	// MaxAlerts bounds the alerts in one push (default 1,000): firing
	// alerts come first, critical before warning; the rest are dropped and
	// counted.
	MaxAlerts int
	// ExternalURL, when set, makes each alert's generatorURL
	// ExternalURL + "/findings/" + the finding id.
	ExternalURL string
	// Labels are added to every alert (e.g. cluster). They must be valid
	// Prometheus label names and must not be one the pusher sets.
	Labels map[string]string
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	// It is never logged.
	BearerToken string

	Client     *http.Client // default: a new client; Timeout is applied per request
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Rand returns a number in [0, 1) for backoff jitter (default
	// math/rand/v2.Float64). It is called from several goroutines.
	Rand func() float64
}

// reservedLabels are set from the finding and cannot be given as static
// labels. severity is an annotation, not a label (see build), but is
// reserved too: a static severity label would read as the finding's.
var reservedLabels = map[string]bool{
	"alertname": true, "kind": true, "severity": true, "finding_id": true,
	"node": true, "source": true, "target": true, "service": true,
	"incident_id": true, "root_cause": true, "owner": true,
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (o Options) withDefaults() Options {
	if o.Interval == 0 {
		o.Interval = 30 * time.Second
	}
	if o.ResolveTimeout == 0 {
		o.ResolveTimeout = 4 * o.Interval
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.Backoff == 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.ResolvedPushes == 0 {
		o.ResolvedPushes = 3
	}
	if o.MaxAlerts == 0 {
		o.MaxAlerts = 1000
	}
	o.ExternalURL = strings.TrimRight(o.ExternalURL, "/")
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.MaxIncidentWait == 0 {
		o.MaxIncidentWait = 2
	}
	return o
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if len(o.URLs) == 0 {
		errs = append(errs, errors.New("no Alertmanager URLs"))
	}
	for i, s := range o.URLs {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("URL %d: %w", i, err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("URL %d (%s): want http(s)://host[:port][/prefix]", i, u.Redacted()))
		}
	}
	if o.Source == nil {
		errs = append(errs, errors.New("no findings source"))
	}
	if o.Interval < 0 || o.Timeout < 0 || o.Backoff < 0 || o.ResolvedPushes < 0 || o.MaxAlerts < 0 {
		errs = append(errs, errors.New("interval, timeout, backoff, resolved pushes and max alerts must not be negative"))
	}
	if o.ResolveTimeout <= o.Interval {
		errs = append(errs, fmt.Errorf("resolve timeout %s must be longer than the interval %s, or alerts resolve between pushes", o.ResolveTimeout, o.Interval))
	}
	if o.ExternalURL != "" {
		if u, err := url.Parse(o.ExternalURL); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("external URL %q is not an absolute URL", o.ExternalURL))
		}
	}
	for k := range o.Labels {
		if !labelNameRE.MatchString(k) || reservedLabels[k] {
			errs = append(errs, fmt.Errorf("static label %q: not a valid label name or one set from the finding", k))
		}
	}
	return errors.Join(errs...)
}

// Pusher sends findings to Alertmanager. PushOnce and Run may be called from
// several goroutines; pushes are serialized.
type Pusher struct {
	o         Options
	endpoints []*url.URL
	started   time.Time

	pushes   *prometheus.CounterVec
	sent     *prometheus.CounterVec
	retries  *prometheus.CounterVec
	lastOK   *prometheus.GaugeVec
	overflow prometheus.Counter

	mu      sync.Mutex // held for a whole push
	tracked map[string]*tracked
	waiting map[string]int // firing findings waiting for their incident: pushes waited
}

// tracked is a finding the pusher has sent, or has to send as resolved.
type tracked struct {
	alert    alert // as last built
	pin      *pin  // its incident labels, fixed at its first push
	resolved bool
	pushes   int // pushes that carried it since it resolved
}

// New returns a Pusher for o.
func New(o Options) (*Pusher, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	o = o.withDefaults()
	p := &Pusher{
		o:       o,
		started: o.Now(),
		tracked: map[string]*tracked{},
		waiting: map[string]int{},
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_alertmanager_pushes_total",
			Help: "Pushes of alerts to Alertmanager by target (the index of its URL) and outcome: " +
				"success, error (network error, 5xx or 429 after every retry) or dropped (rejected with another 4xx; not retried).",
		}, []string{"target", "outcome"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_alertmanager_alerts_sent_total",
			Help: "Alerts (firing and resolved) in successful pushes, by target.",
		}, []string{"target"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_alertmanager_retries_total",
			Help: "Push attempts repeated after a network error, 5xx or 429, by target.",
		}, []string{"target"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cartograph_alertmanager_last_success_timestamp_seconds",
			Help: "Unix time of the last successful push by target (0: never).",
		}, []string{"target"}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_alertmanager_alerts_dropped_total",
			Help: "Alerts left out of a push because it held the most alerts allowed.",
		}),
	}
	for i, s := range o.URLs {
		u, _ := url.Parse(s) // validated
		p.endpoints = append(p.endpoints, u.JoinPath("api", "v2", "alerts"))
		t := strconv.Itoa(i)
		for _, oc := range []string{outcomeSuccess, outcomeError, outcomeDropped} {
			p.pushes.WithLabelValues(t, oc)
		}
		p.sent.WithLabelValues(t)
		p.retries.WithLabelValues(t)
		p.lastOK.WithLabelValues(t)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{p.pushes, p.sent, p.retries, p.lastOK, p.overflow} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("alertmanager: register metrics: %w", err)
			}
		}
	}
	return p, nil
}

const (
	outcomeSuccess = "success"
	outcomeError   = "error"
	outcomeDropped = "dropped"
)

// Run pushes at once and then every Interval until ctx is done; then it
// pushes once more, bounded by Timeout, so that alerts resolved since the
// last push land. Failed pushes are logged and counted; Run returns nil.
func (p *Pusher) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		if err := p.PushOnce(ctx); err != nil && ctx.Err() == nil {
			p.o.Logger.Warn("alertmanager: push", "err", err)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.Timeout)
			defer cancel()
			if err := p.PushOnce(fctx); err != nil {
				p.o.Logger.Warn("alertmanager: final push", "err", err)
			}
			return nil
		case <-t.C:
		}
	}
}

// PushOnce sends every firing finding, and every finding resolved in the
// last ResolvedPushes pushes, to each Alertmanager; it sends nothing when
// there is nothing to say. It returns when every target has answered or
// given up; the error joins the targets' failures (matched by ErrRejected
// or ErrUnavailable).
func (p *Pusher) PushOnce(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	alerts := p.collect()
	if len(alerts) == 0 {
		return nil
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("alertmanager: encode alerts: %w", err)
	}
	errs := make([]error, len(p.endpoints))
	var wg sync.WaitGroup
	for i := range p.endpoints {
		wg.Go(func() { errs[i] = p.pushTo(ctx, i, body, len(alerts)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// collect updates the tracked findings and returns the alerts to send:
// firing first (in the source's order: critical, then oldest), then
// resolved, at most MaxAlerts.
func (p *Pusher) collect() []alert {
	now := p.o.Now()
	firing := p.o.Source.Findings(finding.StateFiring)
	resolved := p.o.Source.Findings(finding.StateResolved)

	out := make([]alert, 0, min(len(firing), p.o.MaxAlerts))
	seen := make(map[string]bool, len(firing)+len(resolved))
	waited := p.waiting
	p.waiting = map[string]int{}
	for i := range firing {
		f := &firing[i]
		seen[f.ID] = true
		var pn *pin
		if t := p.tracked[f.ID]; t != nil {
			pn = t.pin
		}
		inc, known := p.incidentOf(f.ID)
		if pn == nil && p.o.Incidents != nil {
			switch {
			case known:
				pn = pinOf(inc)
			case waited[f.ID] < p.o.MaxIncidentWait:
				p.waiting[f.ID] = waited[f.ID] + 1 // its incident is made on the tick that fired it: next push
				continue
			default:
				pn = &pin{incident: "inc-" + f.ID}
				p.o.Logger.Warn("alertmanager: no incident holds a firing finding; sent as an incident of its own", "finding_id", f.ID)
			}
		}
		if p.tracked[f.ID] == nil {
			pn = ownedPin(pn, f)
		}
		a := p.build(f, now.Add(p.o.ResolveTimeout), pn, incPtr(inc, known))
		p.tracked[f.ID] = &tracked{alert: a, pin: pn}
		out = append(out, a)
	}
	var res []*tracked
	for i := range resolved {
		f := &resolved[i]
		if f.ResolvedAt == nil || seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		t := p.tracked[f.ID]
		inc, known := p.incidentOf(f.ID)
		switch {
		case t != nil && !t.resolved:
			t.alert, t.resolved = p.build(f, *f.ResolvedAt, t.pin, incPtr(inc, known)), true
		case t == nil && !f.ResolvedAt.Before(p.started):
			// Fired and resolved between two pushes: Alertmanager never saw
			// it firing, and ignores a resolved alert it cannot match;
			// sending it keeps the history whole.
			var pn *pin
			if known {
				pn = pinOf(inc)
			} else if p.o.Incidents != nil {
				pn = &pin{incident: "inc-" + f.ID}
			}
			pn = ownedPin(pn, f)
			t = &tracked{alert: p.build(f, *f.ResolvedAt, pn, incPtr(inc, known)), pin: pn, resolved: true}
			p.tracked[f.ID] = t
		case t == nil:
			continue // resolved before this pusher started
		}
		res = append(res, t)
	}
	for id, t := range p.tracked {
		if seen[id] {
			continue
		}
		if !t.resolved {
			// Gone from the source without a resolution (dropped at its
			// bound): say it ended now rather than let it linger.
			t.alert.EndsAt, t.resolved = now, true
			res = append(res, t)
			continue
		}
		if t.pushes >= p.o.ResolvedPushes {
			delete(p.tracked, id) // the source forgot it too: it cannot come back
			continue
		}
		res = append(res, t)
	}
	res = slices.DeleteFunc(res, func(t *tracked) bool { return t.pushes >= p.o.ResolvedPushes })
	slices.SortStableFunc(res, func(a, b *tracked) int { return a.alert.EndsAt.Compare(b.alert.EndsAt) })
	if n := len(out) + len(res); n > p.o.MaxAlerts {
		p.overflow.Add(float64(n - p.o.MaxAlerts))
		p.o.Logger.Warn("alertmanager: too many alerts for one push; the rest are dropped",
			"alerts", n, "max_alerts", p.o.MaxAlerts)
		out = out[:min(len(out), p.o.MaxAlerts)]
		res = res[:p.o.MaxAlerts-len(out)]
	}
	for _, t := range res {
		t.pushes++ // only resolved alerts actually sent count
		out = append(out, t.alert)
	}
	return out
}

// incidentOf returns the incident holding finding id, if incidents are
// known.
func (p *Pusher) incidentOf(id string) (finding.Incident, bool) {
	if p.o.Incidents == nil {
		return finding.Incident{}, false
	}
	return p.o.Incidents.IncidentOf(id)
}

// ownedPin returns pn (nil: a new pin) with f's current owner: the owner
// label of f's alert for its whole life.
func ownedPin(pn *pin, f *finding.Finding) *pin {
	if pn == nil {
		pn = &pin{}
	}
	pn.owner = f.Owner
	return pn
}

// pinOf is the incident labels of a finding in inc.
func pinOf(inc finding.Incident) *pin {
	pn := &pin{incident: inc.ID}
	if c, ok := inc.TopCause(); ok {
		pn.cause = c.Name()
	}
	return pn
}

func incPtr(inc finding.Incident, ok bool) *finding.Incident {
	if !ok {
		return nil
	}
	return &inc
}

// pushTo posts body to target i, retrying on network errors, 5xx and 429.
func (p *Pusher) pushTo(ctx context.Context, i int, body []byte, n int) error {
	target := strconv.Itoa(i)
	endpoint := p.endpoints[i].String()
	redacted := p.endpoints[i].Redacted()
	log := p.o.Logger.With("target", target, "url", redacted)
	var err error
	for attempt := 0; ; attempt++ {
		var retry bool
		retry, err = p.post(ctx, endpoint, body)
		if err == nil {
			p.pushes.WithLabelValues(target, outcomeSuccess).Inc()
			p.sent.WithLabelValues(target).Add(float64(n))
			p.lastOK.WithLabelValues(target).Set(float64(p.o.Now().UnixNano()) / 1e9)
			log.Debug("alertmanager: pushed", "alerts", n, "attempts", attempt+1)
			return nil
		}
		if !retry {
			p.pushes.WithLabelValues(target, outcomeDropped).Inc()
			log.Error("alertmanager: push rejected; not retried", "alerts", n, "err", err)
			return fmt.Errorf("target %s (%s): %w: %w", target, redacted, ErrRejected, err)
		}
		if attempt >= p.o.MaxRetries || ctx.Err() != nil {
			break
		}
		wait := p.backoff(attempt)
		log.Debug("alertmanager: push failed; retrying", "err", err, "in", wait)
		p.retries.WithLabelValues(target).Inc()
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
		case <-tm.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	p.pushes.WithLabelValues(target, outcomeError).Inc()
	log.Warn("alertmanager: push failed", "alerts", n, "err", err)
	return fmt.Errorf("target %s (%s): %w: %w", target, redacted, ErrUnavailable, err)
}

// backoff is the wait before retry attempt+1: Backoff doubled attempt
// times, capped at Interval, jittered to [1/2, 1) of that.
func (p *Pusher) backoff(attempt int) time.Duration {
	d := p.o.Backoff
	for range attempt {
		if d >= p.o.Interval/2 {
			d = p.o.Interval
			break
		}
		d *= 2
	}
	d = min(d, p.o.Interval)
	return d/2 + time.Duration(p.o.Rand()*float64(d/2))
}

// maxErrorBody bounds how much of an error response is read and logged.
const maxErrorBody = 1024

// post makes one POST, bounded by Timeout. retry says whether a failure is
// worth retrying.
func (p *Pusher) post(ctx context.Context, endpoint string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cartograph")
	if p.o.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.o.BearerToken)
	}
	resp, err := p.o.Client.Do(req)
	if err != nil {
		return true, p.redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return false, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	err = p.redact(fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg))))
	retry = resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests
	return retry, err
}

// redact keeps the bearer token out of errors (a server may echo it).
func (p *Pusher) redact(err error) error {
	if p.o.BearerToken == "" || !strings.Contains(err.Error(), p.o.BearerToken) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), p.o.BearerToken, "<redacted>"))
}
