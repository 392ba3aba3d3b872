package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// Postgres is a PostgreSQL cluster of its own: initdb in a temporary
// directory, the server on a free loopback port (its socket in that
// directory too), user postgres without a password, no fsync. PostgreSQL
// refuses to run as root, so as root it runs as the postgres user (the
// Debian package makes it), which then owns the directory.
type Postgres struct{}

var (
	postgresBin = Tool{Names: []string{"postgres"}, Dirs: []string{"/usr/lib/postgresql/*/bin"}, Package: "postgresql"}
	initdbBin   = Tool{Names: []string{"initdb"}, Dirs: []string{"/usr/lib/postgresql/*/bin"}, Package: "postgresql"}
)

func (*Postgres) Name() string                        { return "postgres" }
func (*Postgres) Vars() []string                      { return []string{need.EnvPostgres} }
func (*Postgres) Tools() []Tool                       { return []Tool{postgresBin, initdbBin} }
func (*Postgres) Prepare(context.Context, *Env) error { return nil }

// Start runs initdb and the server and waits until `SELECT version()`
// answers.
func (pg *Postgres) Start(ctx context.Context, env *Env) (*Server, error) {
	server, err := postgresBin.Find()
	if err != nil {
		return nil, err
	}
	// initdb of the same installation as the server.
	initdb := filepath.Join(filepath.Dir(server), "initdb")
	if _, err := os.Stat(initdb); err != nil {
		if initdb, err = initdbBin.Find(); err != nil {
			return nil, err
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL refuses to run as root, and there is no user postgres to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	asUser := func(cmd *exec.Cmd) *exec.Cmd {
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}

	return withPorts(1, func(ports []int) (*Server, error) {
		dir, err := env.tempDir("postgres")
		if err != nil {
			return nil, err
		}
		s := &Server{Name: pg.Name(), Dir: dir, stopTO: env.StopTimeout}
		fail := func(err error) (*Server, error) { _ = s.Stop(); return nil, err }
		if cred != nil {
			if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
		data := filepath.Join(dir, "data")
		icmd := asUser(exec.CommandContext(ctx, initdb, "-D", data, "-U", "postgres", "-A", "trust",
			"-E", "UTF8", "--locale=C", "--no-sync"))
		icmd.Dir = dir
		ip, err := startProc("initdb", icmd, filepath.Join(dir, "initdb.log"))
		if err != nil {
			return fail(err)
		}
		select {
		case <-ip.done:
		case <-time.After(env.StartTimeout):
			_ = ip.stop(env.StopTimeout)
			return fail(errStart("PostgreSQL (initdb)", ip, fmt.Errorf("initdb did not finish within %s", env.StartTimeout)))
		}
		if ip.waitErr != nil {
			return fail(errStart("PostgreSQL (initdb)", ip, ip.waitErr))
		}

		a := addr(ports[0])
		cmd := asUser(exec.Command(server, "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(ports[0]), "-k", dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"))
		cmd.Dir = dir
		p, err := startProc("postgres", cmd, filepath.Join(dir, "postgres.log"))
		if err != nil {
			return fail(err)
		}
		p.stopSig = syscall.SIGINT // fast shutdown: SIGTERM would wait for clients
		s.procs = append(s.procs, p)
		dsn := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", a)
		var version string
		if err := waitReady(ctx, env.StartTimeout, p, func(ctx context.Context) error {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			return conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
		}); err != nil {
			return fail(errStart("PostgreSQL", p, err))
		}
		s.Summary = fmt.Sprintf("PostgreSQL %s, %s", version, a)
		s.Vars = []EnvVar{{need.EnvPostgres, dsn}}
		return s, nil
	})
}
