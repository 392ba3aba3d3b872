package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	secretA = "s3cr3t-AAAAAAAAAAAAAAAAAAAAAAAA"
	secretB = "s3cr3t-BBBBBBBBBBBBBBBBBBBBBBBB"
)

func mustTokens(t *testing.T, list ...Token) *Tokens {
	t.Helper()
	ts, err := NewTokens(list)
	require.NoError(t, err)
	return ts
}

func TestNewTokensValidates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		list    []Token
		wantErr string
	}{
		{"ok", []Token{{"team-a", secretA}, {"ui.1", secretB}}, ""},
		{"empty", nil, "no tokens"},
		{"bad name", []Token{{"team a", secretA}}, "name must match"},
		{"empty name", []Token{{"", secretA}}, "name must match"},
		{"duplicate name", []Token{{"a", secretA}, {"a", secretB}}, "name used twice"},
		{"short secret", []Token{{"a", "tiny-x"}}, "shorter than 16"},
		{"secret with space", []Token{{"a", "has a space in it, long enough"}}, "may hold only"},
		{"duplicate secret", []Token{{"a", secretA}, {"b", secretA}}, `same secret as token "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTokens(tc.list)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			for _, tok := range tc.list {
				require.NotContains(t, err.Error(), tok.Secret, "an error must never show a secret")
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	ts := mustTokens(t, Token{"team-a", secretA}, Token{"team-b", secretB})
	for _, tc := range []struct {
		presented string
		want      string
		ok        bool
	}{
		{secretA, "team-a", true},
		{secretB, "team-b", true},
		{"", "", false},
		{secretA[:len(secretA)-1], "", false},
		{secretA + "x", "", false},
		{strings.ToUpper(secretA), "", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.presented), func(t *testing.T) {
			name, ok := ts.Authenticate(tc.presented)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, name)
		})
	}
	require.Equal(t, []string{"team-a", "team-b"}, ts.Names())
}

func TestParseTokens(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Token
		wantErr  string
	}{
		{"lines", "# who:secret\nteam-a:" + secretA + "\n\n  team-b : " + secretB + "  \n", []Token{{"team-a", secretA}, {"team-b", secretB}}, ""},
		{"commas", "team-a:" + secretA + ",team-b:" + secretB, []Token{{"team-a", secretA}, {"team-b", secretB}}, ""},
		{"no colon", "team-a " + secretA, nil, "line 1: want name:secret"},
		{"invalid", "team-a:tooshort", nil, "shorter than"},
		{"nothing", "# only a comment\n", nil, "no tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTokens(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "tooshort")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(file, []byte("team-a:"+secretA+"\n"), 0o600))

	ts, err := LoadTokens("", "")
	require.NoError(t, err)
	require.Nil(t, ts, "no file and no variable: authentication off")

	ts, err = LoadTokens(file, "team-b:"+secretB)
	require.NoError(t, err)
	require.Equal(t, []string{"team-a", "team-b"}, ts.Names())

	_, err = LoadTokens(file, "team-a:"+secretB)
	require.ErrorContains(t, err, "name used twice")

	_, err = LoadTokens(filepath.Join(dir, "missing"), "")
	require.ErrorIs(t, err, os.ErrNotExist)

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("# nobody yet\n"), 0o600))
	_, err = LoadTokens(empty, "")
	require.ErrorIs(t, err, ErrNoTokens, "a tokens file without tokens is a mistake, not 'auth off'")
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer abc":   "abc",
		"BEARER  abc ": "abc",
		"Basic abc":    "",
		"Bearer":       "",
		"Bearer ":      "",
		"abc":          "",
		"":             "",
	} {
		t.Run(in, func(t *testing.T) {
			got, ok := BearerToken(in)
			require.Equal(t, want != "", ok)
			require.Equal(t, want, got)
		})
	}
}

func TestTokenNeverPrintsSecret(t *testing.T) {
	tok := Token{Name: "team-a", Secret: secretA}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("token", "t", tok)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("token", "t", tok)
	js, err := json.Marshal(tok)
	require.NoError(t, err)
	for _, s := range []string{string(js), fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), logged.String()} {
		require.NotContains(t, s, secretA)
		require.Contains(t, s, "team-a")
	}
}
