package scenario

import (
	"fmt"
	"strconv"
)

// The topology is a 3-ary tree of services under one gateway (service i
// calls 3i+1..3i+3), plus cross calls that add fan-in, databases, external
// peers and messaging destinations. It depends only on Options.Services, so
// every generator of one size (any seed or stream) describes the same system.

type proto uint8

const (
	protoHTTP proto = iota
	protoGRPC
)

type service struct {
	name, ns string
	proto    proto
	port     int64
	route    string // the operation its server spans perform
	children []int32
	cross    int32 // a service outside its subtree it sometimes calls (-1 none)
	db       int32 // database index (-1 none)
	ext      int32 // external peer index (-1 none)
	produces int32 // destination index (-1 none)
	consumes []int32
}

type database struct {
	system, name, addr, table string
	port                      int64
}

type external struct {
	addr, path string
}

type destination struct {
	system, name string
	producer     int32
	groups       []consumerGroup
}

type consumerGroup struct {
	name  string
	svc   int32
	batch bool // a batch consumer: one span per batch, linked to each message's producer
}

type topology struct {
	svcs  []service
	dbs   []database
	exts  []external
	dests []destination
}

var (
	serviceNames = []string{"gateway", "checkout", "catalog", "identity", "cart", "payment", "pricing", "search",
		"inventory", "shipping", "reviews", "recommendation", "user", "session", "fraud", "ledger", "invoice", "tax",
		"media", "notification", "email", "sms", "audit", "loyalty", "coupon", "wishlist", "geo", "currency"}
	namespaceNames = []string{"shop", "catalog", "identity", "payments", "logistics", "growth", "platform", "media", "support"}
	topicNames     = []string{"orders", "payments", "shipments", "invoices", "notifications", "audit-events", "clicks", "stock-updates"}
	externalPeers  = []external{{"api.stripe.com", "/v1/charges"}, {"maps.googleapis.com", "/maps/api/geocode/json"},
		{"api.sendgrid.com", "/v3/mail/send"}, {"api.twilio.com", "/2010-04-01/Messages.json"}}
	messagingSystems = []string{"kafka", "rabbitmq", "nats"}
)

func nth(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return list[i%len(list)] + "-" + strconv.Itoa(i/len(list))
}

// newTopology builds the system of n services (n >= MinServices).
func newTopology(n int) *topology {
	t := &topology{svcs: make([]service, n)}
	// Namespaces follow subtrees: the ancestor at this depth names them.
	nsDepth := 1
	for width := 3; width*10 < n; width *= 3 {
		nsDepth++
	}
	for i := range t.svcs {
		s := &t.svcs[i]
		s.name = nth(serviceNames, i)
		s.cross, s.db, s.ext, s.produces = -1, -1, -1, -1
		for c := 3*i + 1; c <= 3*i+3 && c < n; c++ {
			s.children = append(s.children, int32(c))
		}
		if i == 0 {
			s.ns, s.route = "edge", "GET /"
			s.port = 8080
			continue
		}
		a, d := i, depth(i)
		for ; d > nsDepth; d-- {
			a = (a - 1) / 3
		}
		s.ns = nth(namespaceNames, a-firstAt(min(nsDepth, depth(i))))
		if i%4 == 3 {
			s.proto, s.port = protoGRPC, 9090
			s.route = s.name + ".v1." + upper(s.name) + "Service/Get"
		} else {
			s.proto, s.port = protoHTTP, 8080
			s.route = "POST /api/" + s.name
		}
		// A cross call to a service in a later subtree: fan-in without cycles.
		if i%5 == 2 && 3*i+10 < n {
			s.cross = int32(3*i + 10)
		}
		if i%3 != 0 {
			db := database{system: "postgresql", name: s.name, addr: "pg-" + s.name, table: s.name + "s", port: 5432}
			if i%6 == 5 {
				db = database{system: "redis", name: "0", addr: "redis-" + s.name, table: "", port: 6379}
			}
			if i%6 == 4 {
				db = database{system: "mongodb", name: s.name, addr: "mongo-" + s.name, table: s.name, port: 27017}
			}
			s.db = int32(len(t.dbs))
			t.dbs = append(t.dbs, db)
		}
		if i%7 == 3 {
			s.ext = int32(len(t.exts))
			t.exts = append(t.exts, externalPeers[len(t.exts)%len(externalPeers)])
		}
	}
	// Destinations: one for every eight services, produced by the services
	// 1, 9, 17, ..., consumed by one to three groups of deeper services.
	for d := 0; d*8+1 < n; d++ {
		p := int32(d*8 + 1)
		dest := destination{system: messagingSystems[d%3], name: nth(topicNames, d), producer: p}
		t.svcs[p].produces = int32(d)
		// Consumers: the last services, walking down from the end, so that
		// consumers are mostly leaves of the call tree.
		c1 := int32(n - 1 - d%(n-1))
		if c1 == p {
			c1 = int32(n - 2)
		}
		dest.groups = append(dest.groups, consumerGroup{name: t.svcs[c1].name, svc: c1})
		if dest.system == "kafka" {
			// A second group on every Kafka topic reads in batches with span
			// links (an analytics sink).
			c2 := int32(n - 1 - (d+n/2)%(n-1))
			if c2 != p && c2 != c1 {
				dest.groups = append(dest.groups, consumerGroup{name: t.svcs[c2].name + "-batch", svc: c2, batch: true})
			}
		}
		for _, g := range dest.groups {
			t.svcs[g.svc].consumes = append(t.svcs[g.svc].consumes, int32(d))
		}
		t.dests = append(t.dests, dest)
	}
	return t
}

// depth is the tree depth of service i (the gateway is 0).
func depth(i int) int {
	d := 0
	for ; i > 0; i = (i - 1) / 3 {
		d++
	}
	return d
}

// firstAt is the index of the first service at depth d.
func firstAt(d int) int {
	f, w := 0, 1
	for range d {
		f += w
		w *= 3
	}
	return f
}

func upper(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

func (t *topology) String() string {
	return fmt.Sprintf("%d services, %d databases, %d external peers, %d destinations", len(t.svcs), len(t.dbs), len(t.exts), len(t.dests))
}
