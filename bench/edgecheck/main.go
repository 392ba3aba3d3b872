// Command edgecheck compares the edges and request counts cartograph and
// the OpenTelemetry Collector's service_graph connector report for the same
// traffic: cartograph's GET /api/v1/graph against the connector's
// traces_service_graph_request_total{client,server,connection_type} read
// from the peer's Prometheus exporter. It prints one line per edge and a
// verdict: edges both model must agree exactly; edges only cartograph
// models (destinations, batch consumers tied by span links, named external
// peers, the client node) are listed with why.
//
// Usage: edgecheck --cartograph http://127.0.0.1:8070 --peer http://127.0.0.1:9464/metrics
//
// It exits 1 when an edge both model disagrees.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	carto := flag.String("cartograph", "http://127.0.0.1:8070", "cartograph API base URL")
	peer := flag.String("peer", "http://127.0.0.1:9464/metrics", "the peer's Prometheus exporter URL")
	window := flag.Duration("window", time.Minute, "cartograph graph window; must cover all the traffic")
	flag.Parse()
	g, err := cartograph(*carto, *window)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgecheck:", err)
		os.Exit(2)
	}
	p, err := peerEdges(*peer)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgecheck:", err)
		os.Exit(2)
	}
	if report(os.Stdout, g, p) > 0 {
		os.Exit(1)
	}
}

type apiGraph struct {
	Nodes []struct {
		ID, Kind, Name, Namespace string
	} `json:"nodes"`
	Edges []struct {
		Source, Target, Kind, Protocol string
		ConsumerGroup                  string `json:"consumer_group"`
		Requests                       uint64 `json:"requests"`
	} `json:"edges"`
}

// key is an edge as the connector names it: client and server service (or
// database, or "user"/"unknown" for virtual nodes) and connection type.
type key struct{ client, server, conn string }

// cartoEdge is a cartograph edge in the connector's terms, with a note when
// the connector does not model it.
type cartoEdge struct {
	n    uint64
	only string // why only cartograph has it ("" when both model it)
	desc string // cartograph's own view of the edge
	as   string // how cartograph names the server, when the connector names it otherwise
}

func get(url string) ([]byte, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	res, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", url, res.Status, b)
	}
	return b, nil
}

// cartograph reads the graph and maps each edge to the connector's key.
// Producer -> topic and topic -> consumer become producer -> consumer
// (messaging_system), as the connector pairs a consumer with its parent
// producer span; each consumer edge counts once per producer.
func cartograph(base string, window time.Duration) (map[key]*cartoEdge, error) {
	b, err := get(fmt.Sprintf("%s/api/v1/graph?window=%ds", strings.TrimRight(base, "/"), int(window.Seconds())))
	if err != nil {
		return nil, err
	}
	var g apiGraph
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("decoding the graph: %w", err)
	}
	type node struct{ kind, name string }
	nodes := map[string]node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = node{n.Kind, n.Name}
	}
	producers := map[string][]string{} // destination id -> producer service names
	for _, e := range g.Edges {
		if s, d := nodes[e.Source], nodes[e.Target]; s.kind == "service" && (d.kind == "topic" || d.kind == "queue") {
			producers[e.Target] = append(producers[e.Target], s.name)
		}
	}
	out := map[key]*cartoEdge{}
	add := func(k key, n uint64, only, desc string) *cartoEdge {
		if ce, ok := out[k]; ok {
			ce.n += n
			ce.desc += "; " + desc
			return ce
		}
		ce := &cartoEdge{n: n, only: only, desc: desc}
		out[k] = ce
		return ce
	}
	for _, e := range g.Edges {
		s, d := nodes[e.Source], nodes[e.Target]
		desc := fmt.Sprintf("%s -> %s %s", e.Source, e.Target, e.Protocol)
		if e.ConsumerGroup != "" {
			desc += " @" + e.ConsumerGroup
		}
		switch {
		case s.kind == "service" && d.kind == "service":
			add(key{s.name, d.name, ""}, e.Requests, "", desc)
		case s.kind == "service" && d.kind == "database":
			if host, index, ok := qualifiedIndex(d.name); ok {
				// cartograph puts a namespace that is only a database
				// index (Redis's "0") behind its server; the connector
				// names the database by the index alone.
				add(key{s.name, index, "database"}, e.Requests, "", desc).as = host + "/" + index
				continue
			}
			add(key{s.name, d.name, "database"}, e.Requests, "", desc)
		case s.kind == "client" && d.kind == "service":
			add(key{"user", d.name, "virtual_node"}, e.Requests, "", desc)
		case s.kind == "service" && d.kind == "external":
			add(key{s.name, "external:" + d.name, "virtual_node"}, e.Requests,
				"a named external peer (the connector's virtual node is \"unknown\" unless peer.service is set)", desc)
		case s.kind == "service" && (d.kind == "topic" || d.kind == "queue"):
			add(key{s.name, d.kind + ":" + d.name, "messaging_system"}, e.Requests, "a destination node: the connector has none", desc)
		case (s.kind == "topic" || s.kind == "queue") && d.kind == "service":
			ps := producers[e.Source]
			if len(ps) != 1 {
				add(key{s.kind + ":" + s.name, d.name, "messaging_system"}, e.Requests, "a destination read by a consumer group", desc)
				continue
			}
			add(key{ps[0], d.name, "messaging_system"}, e.Requests, "", desc)
		default:
			add(key{s.kind + ":" + s.name, d.kind + ":" + d.name, e.Kind}, e.Requests, "an edge of a node kind the connector lacks", desc)
		}
	}
	return out, nil
}

// qualifiedIndex splits a database name cartograph qualified by its server
// ("redis-cart/0") into server and index.
func qualifiedIndex(name string) (host, index string, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	return name[:i], name[i+1:], true
}

// peerEdges sums traces_service_graph_request_total over failed="true" and
// "false" by client, server and connection type.
func peerEdges(url string) (map[key]uint64, error) {
	b, err := get(url)
	if err != nil {
		return nil, err
	}
	out := map[key]uint64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	const metric = "traces_service_graph_request_total{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		labels := parseLabels(line[len(metric):end])
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", line, err)
		}
		out[key{labels["client"], labels["server"], labels["connection_type"]}] += uint64(v)
	}
	if len(out) == 0 {
		return nil, errors.New("the peer reports no traces_service_graph_request_total")
	}
	return out, sc.Err()
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			break
		}
		name := s[:eq]
		rest := s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			val.WriteByte(rest[i])
		}
		m[name] = val.String()
		s = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return m
}

// report prints the comparison and returns the number of disagreements.
func report(w io.Writer, g map[key]*cartoEdge, p map[key]uint64) int {
	keys := map[key]bool{}
	for k := range g {
		keys[k] = true
	}
	for k := range p {
		keys[k] = true
	}
	sorted := make([]key, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.conn != b.conn {
			return a.conn < b.conn
		}
		if a.client != b.client {
			return a.client < b.client
		}
		return a.server < b.server
	})
	var agree, differ, cartoOnly, peerOnly int
	fmt.Fprintf(w, "%-18s %-44s %12s %12s  %s\n", "connection", "client -> server", "cartograph", "peer", "verdict")
	for _, k := range sorted {
		ce, inG := g[k]
		pn, inP := p[k]
		var verdict string
		var cn uint64
		if inG {
			cn = ce.n
		}
		switch {
		case inG && ce.only != "":
			cartoOnly++
			verdict = "cartograph only: " + ce.only
		case inG && inP && cn == pn:
			agree++
			verdict = "agree"
			if ce.as != "" {
				verdict += " (cartograph: " + ce.as + ", qualified by its server)"
			}
		case inG && !inP && k.conn == "messaging_system" && p[key{"user", k.server, "virtual_node"}] > 0:
			cartoOnly++
			verdict = "cartograph only: a consumer tied to its producers by span links (the peer sees its spans as called by \"user\")"
		case inG && inP:
			differ++
			verdict = fmt.Sprintf("DIFFER by %+d (cartograph: %s)", int64(cn)-int64(pn), ce.desc)
		case inG:
			differ++
			verdict = "MISSING at the peer (cartograph: " + ce.desc + ")"
		case k.server == "unknown" && k.conn == "virtual_node":
			peerOnly++
			verdict = "peer's unnamed virtual node (cartograph names the external peers, above)"
		case k.client == "user" && k.conn == "virtual_node":
			peerOnly++
			verdict = "peer's \"user\" for consumer spans with no parent (batch consumers: cartograph pairs them by span link)"
		default:
			differ++
			verdict = "MISSING in cartograph"
		}
		pstr := "-"
		if inP {
			pstr = strconv.FormatUint(pn, 10)
		}
		cstr := "-"
		if inG {
			cstr = strconv.FormatUint(cn, 10)
		}
		fmt.Fprintf(w, "%-18s %-44s %12s %12s  %s\n", k.conn, k.client+" -> "+k.server, cstr, pstr, verdict)
	}
	fmt.Fprintf(w, "\nEDGECHECK agree=%d differ=%d cartograph_only=%d peer_only=%d\n", agree, differ, cartoOnly, peerOnly)
	return differ
}
