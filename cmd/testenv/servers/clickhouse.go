package servers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// chdbVersion is the npm package of the ClickHouse engine (libchdb.so) the
// tests run: ClickHouse 26.7.
const chdbVersion = "26.7.3-stable.1"

// chserveSource runs the engine in libchdb.so like `clickhouse local` with
// this program's own arguments. Given "SYSTEM START LISTEN TCP; SYSTEM
// START LISTEN HTTP" and a query that never ends, it serves the native and
// HTTP protocols until SIGTERM.
const chserveSource = `/* chserve: runs the ClickHouse engine in libchdb.so exactly like
 * ` + "`clickhouse local`" + `, passing on this program's own arguments. Given
 * "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP" and a query that never
 * ends, it serves the native and HTTP protocols until it gets SIGTERM.
 * Written and built by cartograph's cmd/testenv. */
#include <stdio.h>
typedef struct chdb_result chdb_result;            /* opaque (chdb.h) */
chdb_result *chdb_query_cmdline(int argc, char **argv);
const char *chdb_result_error(chdb_result *r);

int main(int argc, char **argv) {
    chdb_result *r = chdb_query_cmdline(argc, argv);
    const char *err = r ? chdb_result_error(r) : "no result";
    if (err && *err) { fprintf(stderr, "chserve: %s\n", err); return 1; }
    return 0;
}
`

// ClickHouse is ClickHouse 26.7: the engine of the npm package
// @chdb/lib-linux-x64-gnu (178 MB to download once, 566 MB unpacked, needs
// only glibc) run by chserve, a ten-line C program built against it, on two
// free ports with its data in a temporary directory. Its one user,
// default, has no password; async_insert is on by default.
type ClickHouse struct {
	bin string // chserve, set by Prepare
}

func (*ClickHouse) Name() string { return "clickhouse" }

func (*ClickHouse) Vars() []string { return []string{need.EnvClickHouse, need.EnvClickHouseHTTP} }

func (*ClickHouse) Tools() []Tool {
	return []Tool{
		{Names: []string{"npm"}, Package: "npm"},
		{Names: []string{"gcc"}, Package: "gcc"},
		{Files: []string{"/usr/include/stdio.h"}, Package: "libc6-dev"},
	}
}

func (c *ClickHouse) dir(env *Env) string    { return filepath.Join(env.Cache, "clickhouse") }
func (c *ClickHouse) libDir(env *Env) string { return filepath.Join(c.dir(env), "lib-"+chdbVersion) }

// Prepare downloads the engine with `npm pack` (once), unpacks libchdb.so
// and builds chserve against it (again when chserveSource changes), in
// Env.Cache/clickhouse. Concurrent runs wait for each other there.
func (c *ClickHouse) Prepare(ctx context.Context, env *Env) error {
	dir := c.dir(env)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()

	lib := c.libDir(env)
	if _, err := os.Stat(filepath.Join(lib, "libchdb.so")); err != nil {
		pkg := "@chdb/lib-linux-x64-gnu@" + chdbVersion
		tgz := filepath.Join(dir, "chdb-lib-linux-x64-gnu-"+chdbVersion+".tgz")
		if fi, err := os.Stat(tgz); err != nil || fi.Size() == 0 {
			env.logf("clickhouse: downloading %s (about 178 MB, once) with npm pack into %s", pkg, dir)
			if err := npmPack(ctx, env, pkg, dir, tgz); err != nil {
				return err
			}
		}
		env.logf("clickhouse: unpacking libchdb.so (566 MB) from %s", filepath.Base(tgz))
		if err := untarOne(tgz, "package/libchdb.so", filepath.Join(lib, "libchdb.so")); err != nil {
			return fmt.Errorf("unpack %s: %w", tgz, err)
		}
	}

	c.bin = filepath.Join(lib, "chserve")
	src := filepath.Join(dir, "chserve.c")
	if old, err := os.ReadFile(src); err == nil && string(old) == chserveSource {
		if _, err := os.Stat(c.bin); err == nil {
			return nil
		}
	}
	env.logf("clickhouse: building chserve (gcc) against %s", lib)
	if err := os.WriteFile(src+".new", []byte(chserveSource), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "gcc", "-O2", "-o", c.bin+".tmp", "-x", "c", src+".new",
		"-L"+lib, "-lchdb", "-Wl,-rpath,"+lib)
	cmd.Stdout, cmd.Stderr = env.Log, env.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build chserve: %w", err)
	}
	if err := os.Rename(c.bin+".tmp", c.bin); err != nil {
		return err
	}
	return os.Rename(src+".new", src)
}

// npmPack downloads pkg's tarball to dst with npm (its own client, so the
// registry and proxy settings of the machine apply).
func npmPack(ctx context.Context, env *Env, pkg, dir, dst string) error {
	tmp, err := os.MkdirTemp(dir, "pack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", pkg)
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, env.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm pack %s: %w", pkg, err)
	}
	name := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(name, '\n'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return fmt.Errorf("npm pack %s: no file name on its output", pkg)
	}
	return os.Rename(filepath.Join(tmp, name), dst)
}

// untarOne writes the member name of the gzipped tar file tgz to dst.
func untarOne(tgz, name, dst string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s is not in it", name)
		}
		if err != nil {
			return err
		}
		if h.Name != name {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.Create(dst + ".tmp")
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Rename(dst+".tmp", dst)
	}
}

// lockDir takes an exclusive flock on dir/lock until unlock is called.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Start runs chserve on two free ports with a new data directory and waits
// for /ping and the native port.
func (c *ClickHouse) Start(ctx context.Context, env *Env) (*Server, error) {
	if c.bin == "" {
		return nil, errors.New("clickhouse: Prepare was not called")
	}
	return withPorts(2, func(ports []int) (*Server, error) {
		dir, err := env.tempDir("clickhouse")
		if err != nil {
			return nil, err
		}
		s := &Server{Name: c.Name(), Dir: dir, stopTO: env.StopTimeout}
		native, httpAddr := addr(ports[0]), addr(ports[1])
		cmd := exec.Command(c.bin,
			"--path="+filepath.Join(dir, "data")+"/", "--listen_host=127.0.0.1",
			"--tcp_port="+strconv.Itoa(ports[0]), "--http_port="+strconv.Itoa(ports[1]),
			"--multiquery", "--query", "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "+
				"SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size=1, max_execution_time=0 FORMAT Null")
		cmd.Dir = dir
		p, err := startProc("chserve", cmd, filepath.Join(dir, "chserve.log"))
		if err != nil {
			_ = s.Stop()
			return nil, err
		}
		s.procs = append(s.procs, p)
		var version string
		err = waitReady(ctx, env.StartTimeout, p, func(ctx context.Context) error {
			if err := dialable(ctx, native); err != nil {
				return err
			}
			v, err := httpGet(ctx, "http://"+httpAddr+"/?query=SELECT%20version()", "", "")
			version = strings.TrimSpace(v)
			return err
		})
		if err != nil {
			err = errStart("ClickHouse (chserve)", p, err)
			_ = s.Stop()
			return nil, err
		}
		s.Summary = fmt.Sprintf("ClickHouse %s, native %s, HTTP %s", version, native, httpAddr)
		s.Vars = []EnvVar{{need.EnvClickHouse, native}, {need.EnvClickHouseHTTP, httpAddr}}
		return s, nil
	})
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(ctx context.Context, url, user, password string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d: %.200s", url, resp.StatusCode, b)
	}
	return string(b), nil
}

// ClickHouseCluster is a ClickHouse cluster of two shards of one replica
// each, named cartograph_test in remote_servers: two engines like
// ClickHouse's, each given the same configuration file, on free ports, with
// data directories of their own. Distributed tables on either node reach
// both. There is no ClickHouse Keeper (the library build has none), so no
// ReplicatedMergeTree and no ON CLUSTER DDL: `collector migrate --cluster`
// creates the tables on each node itself.
type ClickHouseCluster struct {
	ClickHouse
}

// ClusterName is the cluster's name in remote_servers.
const ClusterName = "cartograph_test"

func (*ClickHouseCluster) Name() string   { return "clickhouse-cluster" }
func (*ClickHouseCluster) Vars() []string { return []string{need.EnvClickHouseCluster} }

// Start runs both nodes and waits for each to answer and to see the
// cluster.
func (c *ClickHouseCluster) Start(ctx context.Context, env *Env) (*Server, error) {
	if c.bin == "" {
		return nil, errors.New("clickhouse-cluster: Prepare was not called")
	}
	return withPorts(4, func(ports []int) (*Server, error) {
		dir, err := env.tempDir("clickhouse-cluster")
		if err != nil {
			return nil, err
		}
		s := &Server{Name: c.Name(), Dir: dir, stopTO: env.StopTimeout}
		conf := filepath.Join(dir, "cluster.xml")
		xml := fmt.Sprintf(`<clickhouse>
  <remote_servers>
    <%[1]s>
      <shard><replica><host>127.0.0.1</host><port>%[2]d</port></replica></shard>
      <shard><replica><host>127.0.0.1</host><port>%[3]d</port></replica></shard>
    </%[1]s>
  </remote_servers>
</clickhouse>
`, ClusterName, ports[0], ports[2])
		if err := os.WriteFile(conf, []byte(xml), 0o644); err != nil {
			_ = s.Stop()
			return nil, err
		}
		var natives []string
		for i := range 2 {
			node := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
			if err := os.MkdirAll(node, 0o755); err != nil {
				_ = s.Stop()
				return nil, err
			}
			native, httpAddr := addr(ports[2*i]), addr(ports[2*i+1])
			cmd := exec.Command(c.bin, "--config-file="+conf,
				"--path="+filepath.Join(node, "data")+"/", "--listen_host=127.0.0.1",
				"--tcp_port="+strconv.Itoa(ports[2*i]), "--http_port="+strconv.Itoa(ports[2*i+1]),
				"--multiquery", "--query", "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; "+
					"SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size=1, max_execution_time=0 FORMAT Null")
			cmd.Dir = node
			p, err := startProc("chserve", cmd, filepath.Join(node, "chserve.log"))
			if err != nil {
				_ = s.Stop()
				return nil, err
			}
			s.procs = append(s.procs, p)
			err = waitReady(ctx, env.StartTimeout, p, func(ctx context.Context) error {
				if err := dialable(ctx, native); err != nil {
					return err
				}
				n, err := httpGet(ctx, "http://"+httpAddr+"/?query=SELECT%20count()%20FROM%20system.clusters%20WHERE%20cluster%3D%27"+ClusterName+"%27", "", "")
				if err == nil && strings.TrimSpace(n) != "2" {
					err = fmt.Errorf("system.clusters has %s nodes of %s, want 2", strings.TrimSpace(n), ClusterName)
				}
				return err
			})
			if err != nil {
				err = errStart(fmt.Sprintf("ClickHouse cluster node %d (chserve)", i+1), p, err)
				_ = s.Stop()
				return nil, err
			}
			natives = append(natives, native)
		}
		v := ClusterName + "/" + strings.Join(natives, ",")
		s.Summary = fmt.Sprintf("ClickHouse cluster %s: two shards, native %s", ClusterName, strings.Join(natives, " and "))
		s.Vars = []EnvVar{{need.EnvClickHouseCluster, v}}
		return s, nil
	})
}
