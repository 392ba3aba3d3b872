package detect

import (
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// ErrInvalidMessage is wrapped by the errors of a message template that
// does not parse.
var ErrInvalidMessage = errors.New("detect: invalid message template")

// messageFuncs are the functions a message template may call besides
// text/template's built-ins; messageFuncDocs documents them.
func messageFuncs() template.FuncMap {
	return template.FuncMap{
		"pct":        pct,
		"num":        formatNum,
		"ms":         formatMs,
		"secs":       fmtSeconds,
		"count":      fmtNum,
		"possessive": possessive,
	}
}

var messageFuncDocs = []MessageField{
	{Name: "pct", Doc: "a ratio as a whole percentage: 0.4 -> 40%"},
	{Name: "num", Doc: "a number: whole from 100, one decimal from 1, else two"},
	{Name: "ms", Doc: "milliseconds: whole from 10, one decimal from 1, else two, trailing zeros dropped"},
	{Name: "secs", Doc: "seconds as a duration: 42.0s, 1.5min, 2.0h"},
	{Name: "count", Doc: "a count: whole numbers as such, else three significant digits"},
	{Name: "possessive", Doc: "a name's possessive: orders', cart's"},
}

// pct formats a ratio as a whole percentage.
func pct(x float64) string { return fmt.Sprintf("%.0f%%", x*100) }

// parseMessage parses text as the summary template of detector k.
func parseMessage(k finding.Kind, text string) (*template.Template, error) {
	t, err := template.New(k.String()).Funcs(messageFuncs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s: %w", ErrInvalidMessage, k, messageKey, err)
	}
	return t, nil
}

// validateMessage reports whether text ("" for the default) parses as the
// summary template of detector k.
func validateMessage(k finding.Kind, text string) error {
	if text == "" {
		return nil
	}
	_, err := parseMessage(k, text)
	return err
}

// summaryTemplate renders the summaries of one detector.
type summaryTemplate struct {
	def    *template.Template // the default
	custom *template.Template // the configured one; nil: the default
	err    error              // why the configured one does not parse
}

// newSummaryTemplate parses the summary template text of detector k once
// ("" or the default: the default). A template that does not parse is
// not an error here (Validate reports it): every summary is then the
// default's, marked as render marks failures.
func newSummaryTemplate(k finding.Kind, text string) summaryTemplate {
	def, err := parseMessage(k, messageTemplates[k])
	if err != nil {
		panic(err) // the defaults are tested
	}
	st := summaryTemplate{def: def}
	if text != "" && text != messageTemplates[k] {
		st.custom, st.err = parseMessage(k, text)
	}
	return st
}

// render executes the configured template on data. When it fails (a
// field it names is missing or nil, a function gets the wrong argument)
// or did not parse, render returns what the default template renders
// followed by " (message template failed: <error>)", so that a broken
// template shows in every finding rather than losing them.
func (st summaryTemplate) render(data any) string {
	var b strings.Builder
	err := st.err
	if st.custom != nil {
		if err = st.custom.Execute(&b, data); err == nil {
			return b.String()
		}
		b.Reset()
	}
	if derr := st.def.Execute(&b, data); derr != nil {
		b.Reset()
		err = errors.Join(err, derr)
	}
	if err != nil {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "(message template failed: %v)", err)
	}
	return b.String()
}
