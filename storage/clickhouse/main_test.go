package clickhouse

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// The tests run against a real ClickHouse, the one cmd/testenv starts (or
// the one CARTOGRAPH_TEST_CLICKHOUSE names). Each test gets a database of
// its own, dropped when it ends.

var (
	chAddr string // native protocol, host:port; set by TestMain
	dbSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	var err error
	if chAddr, _, err = need.LookupClickHouse(); err != nil {
		fmt.Fprintln(os.Stderr, "storage/clickhouse:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// freshDB returns the name of a database no one uses (created by the code
// under test), dropped when tb ends.
func freshDB(tb testing.TB) string {
	tb.Helper()
	db := fmt.Sprintf("cartograph_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	tb.Cleanup(func() {
		conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}})
		if err != nil {
			tb.Errorf("drop %s: %v", db, err)
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(db)+" SYNC"); err != nil {
			tb.Errorf("drop %s: %v", db, err)
		}
	})
	return db
}

func dsnFor(addr, db string) string { return "clickhouse://" + addr + "/" + db }

// openStore opens a Store on db as collector.
func openStore(tb testing.TB, db, collector string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Options{DSN: dsnFor(chAddr, db), Collector: collector})
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// query runs a scalar query on s's connection.
func scalar[T any](tb testing.TB, s *Store, q string, args ...any) T {
	tb.Helper()
	var v T
	require.NoError(tb, s.conn.QueryRow(context.Background(), q, args...).Scan(&v), q)
	return v
}

// proxy is a TCP proxy to the test server that can be cut off and brought
// back on the same address: a ClickHouse outage without stopping the
// server other packages share.
type proxy struct {
	tb     testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(tb testing.TB, target string) *proxy {
	p := &proxy{tb: tb, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	tb.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

// stop closes the listener and every connection through it.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// start listens again on the same address.
func (p *proxy) start() {
	var (
		ln  net.Listener
		err error
	)
	for range 50 { // the port was just ours; retry briefly if it lingers
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(p.tb, err)
	p.serve(ln)
}
