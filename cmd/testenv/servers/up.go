package servers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Set is the servers of one run. Stop it when the tests are done.
type Set struct {
	env     *Env
	servers []*Server
	// Vars are the variables for the tests, in the components' order.
	Vars []EnvVar
}

// Up makes every component of comps ready: those whose variables are all
// set in this process's environment already are used as they are; for the
// others it installs the Debian packages missing for any of them in one
// apt-get run, prepares each in turn (downloads, builds) and then starts
// them all at once. It prints a line per server as it answers (what,
// where, how long it took). When any fails it stops those that started
// and returns an error naming each that failed and why.
func Up(ctx context.Context, env *Env, comps []Component) (*Set, error) {
	set := &Set{env: env}
	var todo []Component
	for _, c := range comps {
		if vars, ok := fromEnviron(c); ok {
			env.logf("%-12s given: %s", c.Name(), strings.Join(vars, " "))
			continue
		}
		todo = append(todo, c)
	}
	if err := EnsureTools(ctx, env, todo); err != nil {
		return nil, err
	}
	for _, c := range todo {
		if err := c.Prepare(ctx, env); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name(), err)
		}
	}

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = make([]error, len(todo))
		got  = make([]*Server, len(todo))
	)
	for i, c := range todo {
		wg.Go(func() {
			start := time.Now()
			s, err := c.Start(ctx, env)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name(), err)
				return
			}
			if s.Took == 0 {
				s.Took = time.Since(start)
			}
			got[i] = s
			mu.Lock()
			defer mu.Unlock()
			where := ""
			if s.Dir != "" {
				where = ", in " + s.Dir
			}
			env.logf("%-12s %s (%.1f s%s)", c.Name(), s.Summary, s.Took.Seconds(), where)
		})
	}
	wg.Wait()
	for _, s := range got {
		if s != nil {
			set.servers = append(set.servers, s)
			set.Vars = append(set.Vars, s.Vars...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		if serr := set.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return set, nil
}

// fromEnviron reports whether every variable of c is set already, and
// returns them as NAME=value.
func fromEnviron(c Component) ([]string, bool) {
	var vars []string
	for _, name := range c.Vars() {
		v := os.Getenv(name)
		if v == "" {
			return nil, false
		}
		vars = append(vars, name+"="+v)
	}
	return vars, len(vars) > 0
}

// Stop stops every server of the set at once and removes their
// directories, then prints how long that took. A second call does
// nothing. It must not be called concurrently.
func (s *Set) Stop() error {
	if len(s.servers) == 0 {
		return nil
	}
	defer func() { s.servers = nil }()
	start := time.Now()
	errs := make([]error, len(s.servers))
	var (
		wg    sync.WaitGroup
		names []string
	)
	for i, srv := range s.servers {
		if len(srv.procs) > 0 {
			names = append(names, srv.Name)
		}
		wg.Go(func() {
			if err := srv.Stop(); err != nil {
				errs[i] = fmt.Errorf("stop %s: %w", srv.Name, err)
			}
		})
	}
	wg.Wait()
	if len(names) > 0 {
		s.env.logf("stopped %s and removed their temporary directories (%.1f s)", strings.Join(names, ", "), time.Since(start).Seconds())
	}
	return errors.Join(errs...)
}
