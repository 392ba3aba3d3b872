// Package auth holds cartograph's access control for HTTP and gRPC
// listeners: named bearer tokens (Tokens, read from a file or an
// environment variable, never from the command line), an HTTP middleware
// that requires one of them or a browser session made from one (Guard, with
// a login form), and server TLS configuration with optional client
// certificates (ServerTLSConfig).
//
// Nothing in this package logs, prints or serves a token's secret: Token's
// String and LogValue show only its name.
package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// MinSecretLength is the shortest token secret accepted. Generate secrets
// with e.g. `openssl rand -hex 32`.
const MinSecretLength = 16

// MaxTokens bounds how many tokens one set may hold; each name is a metric
// label value, so the set must stay small.
const MaxTokens = 1000

var (
	// namePattern is what a token name may look like: it becomes a metric
	// label value and a log attribute.
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	// secretPattern is RFC 6750's b64token, the syntax a secret must have
	// to travel in an "Authorization: Bearer" header.
	secretPattern = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)
)

// ErrNoTokens is returned by NewTokens for an empty list.
var ErrNoTokens = errors.New("auth: no tokens")

// Token is a named bearer token. Name identifies who uses it (a team, a
// collector, the UI) in metrics and logs; Secret is what they send. String,
// GoString and LogValue show the name only and JSON leaves the secret out,
// so a Token can be logged, printed or encoded without leaking it.
type Token struct {
	Name   string
	Secret string `json:"-"`
}

// String returns the token's name and a redacted secret.
func (t Token) String() string { return t.Name + ":<redacted>" }

// GoString is String, so %#v does not print the secret either.
func (t Token) GoString() string {
	return "auth.Token{Name:" + fmt.Sprintf("%q", t.Name) + ", Secret:<redacted>}"
}

// LogValue implements slog.LogValuer: only the name is logged.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.Name) }

// Tokens is an immutable set of named tokens. Its methods are safe for
// concurrent use.
type Tokens struct {
	list []entry
}

type entry struct {
	name   string
	secret []byte
	sum    [sha256.Size]byte
}

// NewTokens validates list and returns it as a set. Names must be unique
// and match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}; secrets must be unique, at
// least MinSecretLength characters and valid bearer token syntax (RFC 6750
// b64token: letters, digits, -._~+/ and trailing =). Errors name the
// offending token by name or position, never by secret.
func NewTokens(list []Token) (*Tokens, error) {
	if len(list) == 0 {
		return nil, ErrNoTokens
	}
	if len(list) > MaxTokens {
		return nil, fmt.Errorf("auth: %d tokens, at most %d", len(list), MaxTokens)
	}
	t := &Tokens{list: make([]entry, 0, len(list))}
	names := map[string]bool{}
	sums := map[[sha256.Size]byte]string{}
	var errs []error
	for i, tok := range list {
		label := fmt.Sprintf("token %d (%q)", i+1, tok.Name)
		if !namePattern.MatchString(tok.Name) {
			errs = append(errs, fmt.Errorf("%s: name must match %s", label, namePattern))
			continue
		}
		if names[tok.Name] {
			errs = append(errs, fmt.Errorf("%s: name used twice", label))
			continue
		}
		names[tok.Name] = true
		if len(tok.Secret) < MinSecretLength {
			errs = append(errs, fmt.Errorf("%s: secret shorter than %d characters", label, MinSecretLength))
			continue
		}
		if !secretPattern.MatchString(tok.Secret) {
			errs = append(errs, fmt.Errorf("%s: secret may hold only letters, digits, -._~+/ and trailing =", label))
			continue
		}
		sum := sha256.Sum256([]byte(tok.Secret))
		if other, dup := sums[sum]; dup {
			errs = append(errs, fmt.Errorf("%s: same secret as token %q", label, other))
			continue
		}
		sums[sum] = tok.Name
		t.list = append(t.list, entry{name: tok.Name, secret: []byte(tok.Secret), sum: sum})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: invalid tokens: %w", err)
	}
	return t, nil
}

// Authenticate returns the name of the token whose secret is presented. It
// compares SHA-256 digests in constant time against every token, without
// stopping at a match, so its timing tells nothing about which token or how
// much of one matched.
func (t *Tokens) Authenticate(presented string) (name string, ok bool) {
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range t.list {
		if subtle.ConstantTimeCompare(sum[:], t.list[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.list[found].name, true
}

// Names returns the token names in the order they were given.
func (t *Tokens) Names() []string {
	out := make([]string, len(t.list))
	for i, e := range t.list {
		out[i] = e.name
	}
	return out
}

// Len returns how many tokens the set holds.
func (t *Tokens) Len() int { return len(t.list) }

// secretOf returns the secret of the token called name.
func (t *Tokens) secretOf(name string) ([]byte, bool) {
	for _, e := range t.list {
		if e.name == name {
			return e.secret, true
		}
	}
	return nil, false
}

// maxTokensFileBytes bounds a tokens file or variable.
const maxTokensFileBytes = 1 << 20

// ParseTokens reads tokens, one `name:secret` per line (or, for
// environment variables, separated by commas). Blank lines and lines
// starting with # are skipped; spaces around names and secrets are trimmed.
// The result is validated as by NewTokens. Errors give line numbers, never
// secrets.
func ParseTokens(r io.Reader) ([]Token, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxTokensFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: reading tokens: %w", err)
	}
	if len(raw) > maxTokensFileBytes {
		return nil, fmt.Errorf("auth: tokens larger than %d bytes", maxTokensFileBytes)
	}
	var list []Token
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), maxTokensFileBytes)
	for line := 1; sc.Scan(); line++ {
		for _, item := range strings.Split(sc.Text(), ",") {
			item = strings.TrimSpace(item)
			if item == "" || strings.HasPrefix(item, "#") {
				continue
			}
			name, secret, ok := strings.Cut(item, ":")
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: want name:secret", line))
				continue
			}
			list = append(list, Token{Name: strings.TrimSpace(name), Secret: strings.TrimSpace(secret)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading tokens: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: invalid tokens: %w", err)
	}
	if _, err := NewTokens(list); err != nil {
		return nil, err
	}
	return list, nil
}

// ReadTokens reads tokens from a file (one `name:secret` per line) and/or
// an environment variable's value (`name:secret` items separated by commas
// or newlines); either may be empty. It returns nil and no error when both
// are empty. The list is validated as by NewTokens.
func ReadTokens(file, env string) ([]Token, error) {
	var list []Token
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("auth: tokens file: %w", err)
		}
		defer f.Close()
		l, err := ParseTokens(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		list = append(list, l...)
	}
	if env != "" {
		l, err := ParseTokens(strings.NewReader(env))
		if err != nil {
			return nil, fmt.Errorf("environment: %w", err)
		}
		list = append(list, l...)
	}
	if list == nil {
		return nil, nil
	}
	if _, err := NewTokens(list); err != nil {
		return nil, err
	}
	return list, nil
}

// LoadTokens is ReadTokens returning the set: nil, and no error, when both
// file and env are empty, meaning authentication is off.
func LoadTokens(file, env string) (*Tokens, error) {
	list, err := ReadTokens(file, env)
	if err != nil || list == nil {
		return nil, err
	}
	return NewTokens(list)
}

// BearerToken returns the token of an Authorization header value of the
// form "Bearer <token>" (the scheme is case-insensitive), and false for
// anything else.
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
