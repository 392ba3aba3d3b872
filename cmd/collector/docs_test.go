package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

// docFiles returns README.md and docs/*.md, relative to the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "docs/*.md")
	out := []string{"README.md"}
	for _, f := range files {
		rel, err := filepath.Rel(repoRoot, f)
		require.NoError(t, err)
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

var (
	// mdLink matches an inline Markdown link or image: [text](target) or
	// [text](target "title"); the text may hold an image.
	mdLink = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)
	// autoLink matches <scheme:...> autolinks.
	autoLink = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]+)>`)
	// inlineCode matches a code span, whose text is no link.
	inlineCode = regexp.MustCompile("`[^`]*`")
	// htmlAnchor matches an explicit anchor: <a id="x"> or <a name="x">.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// proseLines returns the lines of a Markdown file outside fenced code
// blocks, with code spans blanked, keyed by line number; and the headings'
// anchors as GitHub derives them, with explicit HTML anchors.
func proseLines(text string) (lines map[int]string, anchors map[string]bool) {
	lines, anchors = map[int]string{}, map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l, -1) {
			anchors[m[1]] = true
		}
		if h := strings.TrimLeft(l, "#"); len(h) < len(l) && len(l)-len(h) <= 6 && strings.HasPrefix(h, " ") {
			a := headingAnchor(h)
			if n := seen[a]; n > 0 {
				anchors[fmt.Sprintf("%s-%d", a, n)] = true
			} else {
				anchors[a] = true
			}
			seen[a]++
		}
		lines[i+1] = inlineCode.ReplaceAllStringFunc(l, func(s string) string { return strings.Repeat(" ", len(s)) })
	}
	return lines, anchors
}

// headingAnchor is the anchor GitHub gives a heading's text: lower case,
// letters, digits, '-' and '_' kept, spaces made '-', the rest dropped.
func headingAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestDocsLinks checks every link of README.md and docs/*.md: a relative
// link names a file of the repository that exists (and a heading of it that
// exists, for a Markdown file with a #fragment); a link to anything else is
// an http(s) URL. No link reaches outside the repository by path.
func TestDocsLinks(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	anchorsOf := map[string]map[string]bool{}
	readAnchors := func(rel string) (map[string]bool, error) {
		if a, ok := anchorsOf[rel]; ok {
			return a, nil
		}
		raw, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		_, a := proseLines(string(raw))
		anchorsOf[rel] = a
		return a, nil
	}
	links := 0
	for _, doc := range docFiles(t) {
		t.Run(doc, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
			require.NoError(t, err)
			lines, _ := proseLines(string(raw))
			for n, l := range lines {
				var targets []string
				for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
					targets = append(targets, m[1])
				}
				for _, m := range autoLink.FindAllStringSubmatch(l, -1) {
					targets = append(targets, m[1])
				}
				for _, target := range targets {
					links++
					where := fmt.Sprintf("%s:%d: link %q", doc, n, target)
					u, err := url.Parse(target)
					require.NoError(t, err, where)
					if u.Scheme != "" || u.Host != "" {
						require.Contains(t, []string{"http", "https"}, u.Scheme, "%s: only http(s) links may leave the repository", where)
						continue
					}
					require.False(t, strings.HasPrefix(u.Path, "/"), "%s: absolute paths leave the repository", where)
					rel := doc
					if u.Path != "" {
						rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(doc), u.Path)))
						require.False(t, rel == ".." || strings.HasPrefix(rel, "../"), "%s: points outside the repository", where)
						_, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
						require.NoError(t, err, "%s: no such file", where)
					}
					if u.Fragment == "" || !strings.HasSuffix(rel, ".md") {
						continue
					}
					anchors, err := readAnchors(rel)
					require.NoError(t, err, where)
					require.True(t, anchors[u.Fragment], "%s: %s has no heading with anchor #%s", where, rel, u.Fragment)
				}
			}
		})
	}
	require.Greater(t, links, 30, "links found in the docs: the link pattern no longer matches")
}

// include matches a block that must equal a file of the repository:
// "<!-- include: path -->", a fenced code block, "<!-- /include -->".
var include = regexp.MustCompile("(?s)<!-- include: (\\S+) -->\n```[a-z]*\n(.*?)```\n<!-- /include -->")

// TestDocsIncludes checks that every code block the docs include from a
// file equals that file, and that every Go block in the docs is such an
// include, so that each Go snippet shown is compiled (and run, as an
// example) by go test.
func TestDocsIncludes(t *testing.T) {
	included := 0
	for _, doc := range docFiles(t) {
		t.Run(doc, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(doc)))
			require.NoError(t, err)
			s := string(raw)
			for _, m := range include.FindAllStringSubmatch(s, -1) {
				included++
				want, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(m[1])))
				require.NoError(t, err, "%s includes %s", doc, m[1])
				require.Equal(t, string(want), m[2], "%s: its copy of %s differs from the file; copy the file into it", doc, m[1])
			}
			rest := include.ReplaceAllString(s, "")
			require.NotContains(t, rest, "```go", "%s: a Go snippet must be a file of the repository that go test compiles, included between <!-- include: path --> and <!-- /include -->", doc)
		})
	}
	require.Positive(t, included, "no included snippet found: the include pattern no longer matches")
}

// TestREADMETestCommand checks that the test command the README gives in its
// Quickstart is the one .ci/run runs.
func TestREADMETestCommand(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	var cmd string
	for _, l := range strings.Split(string(raw), "\n") {
		if c, comment, ok := strings.Cut(l, "#"); ok && strings.HasPrefix(l, "go ") && strings.TrimSpace(comment) == "run the tests" {
			cmd = strings.TrimSpace(c)
			break
		}
	}
	require.NotEmpty(t, cmd, "README: no line `go ... # run the tests`")
	ci, err := os.ReadFile(filepath.Join(repoRoot, ".ci", "run"))
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(ci), "\n"), cmd, ".ci/run does not run the README's test command %q", cmd)
}
