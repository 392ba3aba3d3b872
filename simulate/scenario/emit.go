package scenario

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// emitter writes recs into one ptrace.Traces, one ResourceSpans per service.
type emitter struct {
	topo  *topology
	td    ptrace.Traces
	bySvc map[int32]ptrace.SpanSlice
}

func newEmitter(t *topology) *emitter {
	return &emitter{topo: t, td: ptrace.NewTraces(), bySvc: map[int32]ptrace.SpanSlice{}}
}

// scopes are instrumentation scope names by what the span does.
var scopes = [...]string{
	roleServer:   "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
	roleClient:   "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
	roleDB:       "github.com/XSAM/otelsql",
	roleExternal: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
	roleProducer: "github.com/twmb/franz-go/plugin/kotel",
	roleConsumer: "github.com/twmb/franz-go/plugin/kotel",
}

func (e *emitter) spans(svc int32) ptrace.SpanSlice {
	if s, ok := e.bySvc[svc]; ok {
		return s
	}
	sv := &e.topo.svcs[svc]
	rs := e.td.ResourceSpans().AppendEmpty()
	a := rs.Resource().Attributes()
	a.PutStr("service.name", sv.name)
	a.PutStr("service.namespace", sv.ns)
	a.PutStr("service.version", "1."+strconv.Itoa(int(svc%7))+".0")
	a.PutStr("deployment.environment.name", "demo")
	a.PutStr("telemetry.sdk.name", "opentelemetry")
	a.PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(scopes[roleServer])
	e.bySvc[svc] = ss.Spans()
	return ss.Spans()
}

func (e *emitter) emit(r *rec) {
	t := e.topo
	sp := e.spans(r.svc).AppendEmpty()
	sp.SetTraceID(r.trace)
	sp.SetSpanID(r.id)
	sp.SetParentSpanID(r.parent)
	sp.SetKind(r.kind)
	sp.SetStartTimestamp(pcommon.Timestamp(r.start))
	sp.SetEndTimestamp(pcommon.Timestamp(r.end))
	if r.err {
		sp.Status().SetCode(ptrace.StatusCodeError)
	}
	a := sp.Attributes()
	switch r.role {
	case roleServer:
		sv := &t.svcs[r.svc]
		sp.SetName(r.name)
		if r.svc == 0 {
			a.PutStr("http.request.method", "GET")
			a.PutStr("http.route", r.name[len("GET "):])
			a.PutStr("url.scheme", "https")
			a.PutStr("server.address", "shop.example.com")
			a.PutInt("http.response.status_code", r.code)
			break
		}
		if sv.proto == protoGRPC {
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", sv.route[:len(sv.route)-len("/Get")])
			a.PutStr("rpc.method", "Get")
			a.PutInt("rpc.grpc.status_code", r.code)
		} else {
			a.PutStr("http.request.method", "POST")
			a.PutStr("http.route", sv.route[len("POST "):])
			a.PutStr("url.scheme", "http")
			a.PutInt("http.response.status_code", r.code)
			a.PutStr("network.protocol.version", "1.1")
		}
	case roleClient:
		callee := &t.svcs[r.peer]
		if callee.proto == protoGRPC {
			sp.SetName(callee.route)
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", callee.route[:len(callee.route)-len("/Get")])
			a.PutStr("rpc.method", "Get")
			a.PutStr("server.address", callee.name)
			a.PutInt("server.port", callee.port)
			a.PutInt("rpc.grpc.status_code", r.code)
			break
		}
		sp.SetName("POST")
		a.PutStr("http.request.method", "POST")
		a.PutStr("server.address", callee.name)
		a.PutInt("server.port", callee.port)
		a.PutStr("url.full", "http://"+callee.name+":8080"+callee.route[len("POST "):])
		if r.code != 0 {
			a.PutInt("http.response.status_code", r.code)
		}
		if r.resend > 0 {
			a.PutInt("http.request.resend_count", r.resend)
		}
		if r.err && r.code == 0 {
			a.PutStr("error.type", "circuit_breaker_open")
		}
	case roleDB:
		db := &t.dbs[r.peer]
		a.PutStr("db.system.name", db.system)
		a.PutStr("server.address", db.addr)
		a.PutInt("server.port", db.port)
		switch db.system {
		case "redis":
			sp.SetName("GET")
			a.PutStr("db.namespace", db.name)
			a.PutStr("db.operation.name", "GET")
		default:
			sp.SetName("SELECT " + db.table)
			a.PutStr("db.namespace", db.name)
			a.PutStr("db.operation.name", "SELECT")
			a.PutStr("db.collection.name", db.table)
		}
	case roleExternal:
		x := &t.exts[r.peer]
		sp.SetName("POST")
		a.PutStr("http.request.method", "POST")
		a.PutStr("server.address", x.addr)
		a.PutInt("server.port", 443)
		a.PutStr("url.full", "https://"+x.addr+x.path)
		a.PutInt("http.response.status_code", r.code)
	case roleProducer:
		d := &t.dests[r.peer]
		sp.SetName("publish " + d.name)
		a.PutStr("messaging.system", d.system)
		a.PutStr("messaging.operation.type", "publish")
		a.PutStr("messaging.operation.name", "publish")
		a.PutStr("messaging.destination.name", d.name)
		a.PutStr("server.address", d.system+"-1")
	case roleConsumer:
		d := &t.dests[r.peer]
		grp := &d.groups[r.grp]
		sp.SetName("process " + d.name)
		a.PutStr("messaging.system", d.system)
		a.PutStr("messaging.operation.type", "process")
		a.PutStr("messaging.operation.name", "process")
		a.PutStr("messaging.destination.name", d.name)
		if d.system != "rabbitmq" {
			a.PutStr("messaging.consumer.group.name", grp.name)
		}
		if len(r.links) > 0 {
			a.PutInt("messaging.batch.message_count", int64(len(r.links)))
			for _, l := range r.links {
				sl := sp.Links().AppendEmpty()
				sl.SetTraceID(l.trace)
				sl.SetSpanID(l.span)
			}
		}
	}
}
