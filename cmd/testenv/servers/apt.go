package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Tool is a program (or file) a component needs and the Debian package it
// comes in.
type Tool struct {
	// Names are looked up on PATH, then in Dirs, in order.
	Names []string
	// Dirs are searched for Names after PATH (e.g. /usr/sbin, which is not
	// on every user's PATH, or a versioned /usr/lib/postgresql/*/bin).
	// Globs are allowed; the last match (highest version) wins.
	Dirs []string
	// Files is used instead of Names for a file that is not a program
	// (a header); the first that exists is it.
	Files []string
	// Package is the Debian package that installs it.
	Package string
}

// String names the tool for messages.
func (t Tool) String() string {
	if len(t.Names) > 0 {
		return t.Names[0]
	}
	return strings.Join(t.Files, ", ")
}

// Find returns the tool's path, or an error wrapping ErrMissing.
func (t Tool) Find() (string, error) {
	for _, f := range t.Files {
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	for _, n := range t.Names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	for _, d := range t.Dirs {
		dirs, _ := filepath.Glob(d)
		slices.SortFunc(dirs, compareVersions)
		for i := len(dirs) - 1; i >= 0; i-- {
			for _, n := range t.Names {
				p := filepath.Join(dirs[i], n)
				if executable(p) == nil {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%w: %s (Debian package %s)", ErrMissing, t, t.Package)
}

// compareVersions orders paths with numbers in them numerically where they
// differ in a number (…/postgresql/9/bin before …/postgresql/15/bin).
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		if na >= 0 && nb >= 0 {
			if na != nb {
				return na - nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func leadingNumber(s string) (int, string) {
	i, n := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i < 9 {
		n = n*10 + int(s[i]-'0')
		i++
	}
	if i == 0 {
		return -1, s
	}
	return n, s[i:]
}

// Apt installs Debian packages with apt-get, one run at a time, its output
// on Env.Log. It runs `apt-get update` once, before its first install.
type Apt struct {
	mu      sync.Mutex
	updated bool
}

// Install installs pkgs (those already installed are left alone by
// apt-get). It never starts, stops or configures a service itself;
// whether a package's own scripts start one is the machine's policy
// (policy-rc.d).
func (a *Apt) Install(ctx context.Context, env *Env, pkgs []string) error {
	if len(pkgs) == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	line := "apt-get install -y " + strings.Join(pkgs, " ")
	if !env.Install {
		return fmt.Errorf("%w: Debian packages %s; install them (%s) or run without -install=false",
			ErrMissing, strings.Join(pkgs, ", "), line)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: %s, and there is no apt-get here: install their equivalents and put them on PATH",
			ErrMissing, strings.Join(pkgs, ", "))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: Debian packages %s, and installing needs root: run `sudo %s`, then again",
			ErrMissing, strings.Join(pkgs, ", "), line)
	}
	run := func(args ...string) error {
		env.logf("apt-get %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
		// Interrupted, apt-get gets SIGINT (and a minute to finish what
		// dpkg has begun), never a SIGKILL in the middle of an install.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = time.Minute
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = env.Log, env.Log
		return cmd.Run()
	}
	if !a.updated {
		if err := run("update"); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		a.updated = true
	}
	if err := run(append([]string{"install", "-y"}, pkgs...)...); err != nil {
		return fmt.Errorf("%s: %w", line, err)
	}
	return nil
}

// missingPackages returns the Debian packages of the tools that are not
// found, each once, in order.
func missingPackages(tools []Tool) []string {
	var pkgs []string
	for _, t := range tools {
		if _, err := t.Find(); errors.Is(err, ErrMissing) && !slices.Contains(pkgs, t.Package) {
			pkgs = append(pkgs, t.Package)
		}
	}
	return pkgs
}

// EnsureTools installs the packages of every missing tool of comps in one
// apt-get run and checks that each is then found.
func EnsureTools(ctx context.Context, env *Env, comps []Component) error {
	var tools []Tool
	for _, c := range comps {
		tools = append(tools, c.Tools()...)
	}
	pkgs := missingPackages(tools)
	if len(pkgs) == 0 {
		return nil
	}
	env.logf("installing what is missing here: %s", strings.Join(pkgs, " "))
	if err := env.Apt.Install(ctx, env, pkgs); err != nil {
		return err
	}
	var errs []error
	for _, t := range tools {
		if _, err := t.Find(); err != nil {
			errs = append(errs, fmt.Errorf("%w after installing it", err))
		}
	}
	return errors.Join(errs...)
}
