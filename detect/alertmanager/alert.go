package alertmanager

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// alert is one postableAlert of Alertmanager's API v2.
type alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// maxAnnotation bounds each annotation value, in bytes.
const maxAnnotation = 4096

// pin is the labels of a finding's alert that could change while it
// fires, fixed when it is first sent: the incident it belonged to then,
// that incident's first root cause, and the finding's owner.
type pin struct {
	incident, cause string
	owner           string // the finding's owner when first sent (the owner label)
}

// build turns f into an alert ending at endsAt. startsAt is when the
// condition began (pending included), as Prometheus does with ActiveAt.
//
// The labels are the alert's identity in Alertmanager (its fingerprint), so
// they hold only what a finding keeps for its whole life: its kind, id and
// subject, the static labels, and (pn) the incident and root cause it was
// first sent with. What changes while it fires (severity, summary,
// evidence, the incident's current id and root causes in inc) goes in
// annotations, so that a re-sent alert updates the one series rather than
// starting a second one and leaving the first firing until its endsAt.
func (p *Pusher) build(f *finding.Finding, endsAt time.Time, pn *pin, inc *finding.Incident) alert {
	l := make(map[string]string, 9+len(p.o.Labels))
	for k, v := range p.o.Labels {
		l[k] = v
	}
	l["alertname"] = AlertName(f.Kind)
	l["kind"] = f.Kind.String()
	l["finding_id"] = f.ID
	set := func(k, v string) {
		if v != "" {
			l[k] = v
		}
	}
	set("node", f.Subject.Node)
	set("source", f.Subject.Source)
	set("target", f.Subject.Target)
	if f.Subject.Node != "" {
		set("service", f.Subject.Node)
	} else {
		set("service", f.Subject.Source)
	}

	if pn != nil {
		set("incident_id", pn.incident)
		set("root_cause", pn.cause)
		set("owner", pn.owner)
	}

	ann := map[string]string{
		"severity":    f.Severity.String(),
		"summary":     truncate(f.Summary),
		"description": truncate(description(f)),
	}
	if f.Owner != "" {
		ann["owner"] = f.Owner // the current owner; the label keeps the first
	}
	if inc != nil {
		ann["incident"] = inc.ID
		if len(inc.RootCauses) > 0 {
			causes := make([]string, 0, len(inc.RootCauses))
			for _, c := range inc.RootCauses {
				causes = append(causes, fmt.Sprintf("%s (%s)", c.Name(), formatFloat(c.Score)))
			}
			ann["root_causes"] = truncate(strings.Join(causes, ", "))
		}
	}
	if len(f.Evidence) > 0 {
		if b, err := json.Marshal(f.Evidence); err == nil {
			ann["evidence"] = truncate(string(b))
		} else {
			p.o.Logger.Debug("alertmanager: evidence is not JSON-encodable", "finding_id", f.ID, "err", err)
		}
	}
	a := alert{Labels: l, Annotations: ann, StartsAt: f.StartedAt.UTC(), EndsAt: endsAt.UTC()}
	if a.EndsAt.Before(a.StartsAt) {
		a.EndsAt = a.StartsAt // Alertmanager refuses an alert that ends before it starts
	}
	if p.o.ExternalURL != "" {
		a.GeneratorURL = p.o.ExternalURL + "/findings/" + url.PathEscape(f.ID)
	}
	return a
}

// AlertName is the alertname label of a finding kind: "Cartograph" and the
// kind in CamelCase, e.g. CartographRetryStorm.
func AlertName(k finding.Kind) string {
	var b strings.Builder
	b.WriteString("Cartograph")
	for w := range strings.SplitSeq(k.String(), "_") {
		if w == "" {
			continue
		}
		r, n := utf8.DecodeRuneInString(w)
		b.WriteString(strings.ToUpper(string(r)))
		b.WriteString(w[n:])
	}
	return b.String()
}

// description is the summary, then the evidence as sorted key=value pairs,
// then the entry points in the blast radius.
func description(f *finding.Finding) string {
	var b strings.Builder
	b.WriteString(f.Summary)
	if len(f.Evidence) > 0 {
		keys := make([]string, 0, len(f.Evidence))
		for k := range f.Evidence {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString("\nEvidence:")
		for _, k := range keys {
			b.WriteString(" ")
			b.WriteString(k)
			b.WriteString("=")
			b.WriteString(formatValue(f.Evidence[k]))
		}
	}
	if br := f.BlastRadius; br != nil && len(br.EntryPoints) > 0 {
		b.WriteString("\nEntry points affected:")
		for i, a := range br.EntryPoints {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s (%s%%)", a.Node, formatFloat(math.Round(a.Share*1000)/10))
		}
		if br.Truncated {
			b.WriteString(", and more")
		}
	}
	return b.String()
}

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return formatFloat(v)
	case float32:
		return formatFloat(float64(v))
	case fmt.Stringer:
		return v.String()
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, bool:
		return fmt.Sprint(v)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// formatFloat writes plain decimals where they are readable (0.4, 1500)
// and exponents only for the very small or large.
func formatFloat(f float64) string {
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e15) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// truncate cuts s to maxAnnotation bytes on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxAnnotation {
		return s
	}
	cut := maxAnnotation - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
