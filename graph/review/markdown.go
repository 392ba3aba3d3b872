package review

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// kindTitles name the kinds in a Markdown report.
var kindTitles = map[Kind]string{
	KindSyncChain:      "Synchronous chain",
	KindRetryNoBackoff: "Retries without backoff",
	KindNoBreaker:      "No circuit breaking",
	KindNoTimeout:      "No timeout",
	KindChatty:         "Chatty edge",
	KindHub:            "Hub",
	KindAsyncPipeline:  "Async pipeline",
}

// Markdown renders the report for a design review: a summary line, then
// the observations grouped by namespace (those outside any last), warnings
// first, each with its subject, what was seen, why it matters, the common
// remedy and its numbers.
func (rep Report) Markdown() []byte {
	var b strings.Builder
	b.WriteString("# Communication review\n\n")
	warnings := 0
	for _, o := range rep.Observations {
		if o.Severity == SeverityWarning {
			warnings++
		}
	}
	fmt.Fprintf(&b, "The %s s ending %s: %d observations, %d of them warnings.\n",
		num(rep.WindowSeconds), rep.GeneratedAt.UTC().Format("2006-01-02 15:04:05 UTC"), len(rep.Observations), warnings)
	for _, s := range rep.Skipped {
		fmt.Fprintf(&b, "Not judged: %s.\n", mdText(s))
	}
	byNS := map[string][]Observation{}
	var names []string
	for _, o := range rep.Observations {
		if _, ok := byNS[o.Namespace]; !ok {
			names = append(names, o.Namespace)
		}
		byNS[o.Namespace] = append(byNS[o.Namespace], o)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "":
			return 1
		case b == "":
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, ns := range names {
		if ns == "" {
			b.WriteString("\n## Outside any namespace\n")
		} else {
			fmt.Fprintf(&b, "\n## Namespace %s\n", mdCode(ns))
		}
		for _, o := range byNS[ns] {
			subject := mdText(o.Subject.Node)
			if o.Subject.Node == "" {
				subject = mdText(o.Subject.Source) + " → " + mdText(o.Subject.Target)
			}
			if op, ok := o.Evidence["operation"].(string); ok {
				subject += " (" + mdCode(op) + ")"
			}
			fmt.Fprintf(&b, "\n### %s: %s\n\n", kindTitles[o.Kind], subject)
			fmt.Fprintf(&b, "**%s.** %s.\n\n", o.Severity, mdText(o.Summary))
			fmt.Fprintf(&b, "*Why it matters:* %s.\n\n", mdText(o.Why))
			fmt.Fprintf(&b, "*Remedy:* %s.\n\n", mdText(o.Remedy))
			keys := make([]string, 0, len(o.Evidence))
			for k := range o.Evidence {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b.WriteString("<details><summary>Evidence</summary>\n\n")
			for _, k := range keys {
				v, err := json.Marshal(o.Evidence[k])
				if err != nil {
					v = []byte(fmt.Sprint(o.Evidence[k]))
				}
				fmt.Fprintf(&b, "- `%s`: %s\n", k, mdCode(string(v)))
			}
			b.WriteString("\n</details>\n")
		}
	}
	return []byte(b.String())
}

// mdText escapes the characters Markdown would read as markup in running
// text.
func mdText(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]", "<", "&lt;", ">", "&gt;", "#", "\\#", "|", "\\|", "\n", " ")
	return r.Replace(s)
}

// mdCode writes s as inline code, fenced by more backticks than it holds.
func mdCode(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}
