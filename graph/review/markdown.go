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
			if rows, ok := o.Evidence["chain"].([]map[string]any); ok {
				hopTable(&b, rows)
			}
			if rows, ok := o.Evidence["stages"].([]map[string]any); ok {
				stageTable(&b, rows)
			}
			for _, k := range keys {
				if k == "chain" || k == "stages" {
					continue // drawn as a table above
				}
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

// hopTable draws a chain's hops.
func hopTable(b *strings.Builder, rows []map[string]any) {
	b.WriteString("| hop | protocol | p50 ms | p95 ms | adds p50 ms | availability | answered after the caller replied |\n|---|---|---|---|---|---|---|\n")
	for _, h := range rows {
		fmt.Fprintf(b, "| %s → %s | %s | %s | %s | %s | %s | %s |\n", tableCode(h["source"]), tableCode(h["target"]),
			cell(h["protocol"]), cell(h["p50_ms"]), cell(h["p95_ms"]), cell(h["adds_p50_ms"]), pctCell(h["availability"]), pctCell(h["answered_after_caller_replied"]))
	}
	b.WriteString("\n")
}

// stageTable draws a pipeline's stages.
func stageTable(b *strings.Builder, rows []map[string]any) {
	b.WriteString("| stage | group | rate /s | wait p50 ms | wait p95 ms | processing p50 ms | time lag s |\n|---|---|---|---|---|---|---|\n")
	for _, s := range rows {
		wait, _ := s["wait_ms"].(map[string]any)
		work, _ := s["processing_ms"].(map[string]any)
		fmt.Fprintf(b, "| %s → %s | %s | %s | %s | %s | %s | %s |\n", tableCode(s["destination"]), tableCode(s["consumer"]),
			cell(s["consumer_group"]), cell(s["rate_per_s"]), cell(wait["p50"]), cell(wait["p95"]), cell(work["p50"]), cell(s["time_lag_s"]))
	}
	b.WriteString("\n")
}

// tableCode writes v as inline code in a table cell: a '|' escaped, as
// GitHub's tables need even in code.
func tableCode(v any) string { return strings.ReplaceAll(mdCode(fmt.Sprint(v)), "|", "\\|") }

// pctCell writes a ratio as a percentage with up to two decimals, ""
// when absent.
func pctCell(v any) string {
	if x, ok := v.(float64); ok {
		return pct(x)
	}
	return cell(v)
}

// cell writes a table cell's value: numbers as num does, "" when absent.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return num(x)
	case string:
		return mdText(x)
	}
	return mdText(fmt.Sprint(v))
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
