package realism

import (
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// publish appends a message to a partition of tp chosen by its key.
func (s *sim) publish(tp *topic, m message, t time.Time) {
	if tp == nil {
		return
	}
	p := tp.parts[s.rng.IntN(len(tp.parts))]
	p.msgs = append(p.msgs, m)
	p.end++
	s.stats.Messages++
}

// consumerPoll is one poll() of a group member at t: auto-commit of what
// was processed when AutoCommit has passed, then a fetch of up to
// MaxPollRecords messages (fewer when the group is throttled), processed as
// one batch span linked to their producer spans.
func (s *sim) consumerPoll(m *member, t time.Time) {
	tp := m.grp.topic
	if t.Sub(m.lastCommit) >= AutoCommit {
		for _, pi := range m.parts {
			tp.parts[pi].committed = tp.parts[pi].processed
		}
		m.lastCommit = t
	}
	var ends int64
	for _, pi := range m.parts {
		ends += tp.parts[pi].end
	}
	produced := ends - m.seenEnd
	m.seenEnd = ends
	limit := MaxPollRecords
	if f := s.sys.Dynamics.ConsumeFactor; f != nil {
		if k, _ := f(m.grp.Name, t); k < 1 {
			m.budget = min(m.budget+k*float64(produced), 2*MaxPollRecords)
			limit = min(limit, int(math.Floor(m.budget)))
		}
	}
	// Fetch round-robin over the member's partitions, one message at a
	// time from a rotating start, as a fetch session spreads over them:
	// a throttled member falls behind on all its partitions alike.
	n := 0
	var links []SpanRef
	m.rr++
	for more := true; more && n < limit; {
		more = false
		for j := range m.parts {
			if n >= limit {
				break
			}
			p := tp.parts[m.parts[(j+m.rr)%len(m.parts)]]
			if p.fetched >= p.end {
				continue
			}
			msg := p.msgs[p.fetched-p.base]
			if msg.traced && len(links) < LinkLimit {
				links = append(links, msg.ref)
			}
			p.fetched++
			n++
			more = true
		}
	}
	for _, pi := range m.parts {
		p := tp.parts[pi]
		m.inflight[pi] = p.fetched
		if d := p.fetched - p.base; d > 4096 {
			p.msgs = append(p.msgs[:0], p.msgs[d:]...)
			p.base = p.fetched
		}
	}
	if n == 0 {
		e := s.at(t.Add(ConsumerPollIdle), evConsumerPoll)
		e.mem = m
		s.push(e)
		return
	}
	if m.budget >= float64(n) {
		m.budget -= float64(n)
	} else {
		m.budget = 0
	}
	s.stats.Traces++
	tr, id := s.traceID(), s.spanID()
	cur := t.Add(s.lognormal(500 * time.Microsecond))
	for i := range m.grp.Calls {
		e, _ := s.call(m.rep, &m.grp.Calls[i], cur, tr, id)
		cur = e.Add(50 * time.Microsecond)
	}
	per := s.lognormal(m.grp.PerMessage)
	cur = cur.Add(time.Duration(n) * per)
	sp := &Span{Trace: tr, ID: id, Kind: ptrace.SpanKindConsumer, Name: "process " + tp.Name, Start: t, End: cur, Links: links, replica: m.rep,
		Attrs: []Attr{S("messaging.system", "kafka"), S("messaging.operation.type", "process"), S("messaging.operation.name", "process"),
			S("messaging.destination.name", tp.Name), S("messaging.consumer.group.name", m.grp.Name), I("messaging.batch.message_count", int64(n)),
			S("server.address", "kafka-"+strconv.Itoa(s.rng.IntN(3))), I("server.port", 9092)}}
	s.emit(sp)
	e := s.at(cur, evBatchDone)
	e.mem = m
	s.push(e)
}

// batchDone records a member's batch processed and polls again.
func (s *sim) batchDone(m *member, t time.Time) {
	for pi, off := range m.inflight {
		m.grp.topic.parts[pi].processed = off
	}
	e := s.at(t.Add(time.Millisecond), evConsumerPoll)
	e.mem = m
	s.push(e)
}

// brokerPoll reads every group's committed and end offsets per partition,
// as the Kafka poller (ingest/brokers) or the kafkametrics receiver does,
// into the lag store.
func (s *sim) brokerPoll(t time.Time) {
	var samples []lag.Sample
	for _, g := range s.groups {
		if f := s.sys.Dynamics.ConsumeFactor; f != nil && s.faultVisible.IsZero() {
			if _, fault := f(g.Name, t); fault {
				s.faultVisible = t
			}
		}
		for i, p := range g.topic.parts {
			samples = append(samples, lag.Sample{
				Time: t, Key: lag.Key{System: "kafka", Destination: g.topic.Name, Group: g.Name, Partition: int32(i)},
				Lag: float64(p.end - p.committed), Committed: float64(p.committed), End: float64(p.end),
				Consumers: float64(len(g.members)), Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka",
			})
		}
	}
	s.stats.LagSamples += len(samples)
	if s.onLag != nil {
		s.onLag(samples)
	}
	s.lags.Add(samples)
}

// cron fires job i at t: one root span calling Calls times, spread over Over.
func (s *sim) cron(i int, t time.Time) {
	cr := &s.sys.Crons[i]
	svc := s.services[cr.Service]
	r := svc.pick(s)
	s.stats.Traces++
	tr, id := s.traceID(), s.spanID()
	end := t
	step := cr.Over / time.Duration(max(cr.Calls, 1))
	for k := range cr.Calls {
		e, _ := s.call(r, &cr.Call, t.Add(time.Duration(k)*step), tr, id)
		end = maxTime(end, e)
	}
	s.emit(&Span{Trace: tr, ID: id, Kind: ptrace.SpanKindInternal, Name: "reconcile", Start: t, End: end.Add(time.Millisecond), replica: r,
		Attrs: []Attr{S("code.function.name", "jobs.Reconcile"), I("job.calls", int64(cr.Calls))}})
}

// restart replaces the oldest live replica of service i (step k of a
// rolling restart): it stops taking requests, drains for Drain and shuts
// down (its SDK flushes); a new replica with a new service.instance.id
// starts, slower for WarmUp.
func (s *sim) restart(i int, k uint64, t time.Time) {
	svc := s.svcList[i]
	if len(svc.live) > 0 {
		old := svc.live[0]
		svc.live = svc.live[1:]
		old.draining = true
		e := s.at(t.Add(Drain), evShutdown)
		e.rep = old
		s.push(e)
	}
	svc.addReplica(s, t, true)
	s.stats.Restarts++
	if int(k)+1 < svc.Replicas {
		e := s.at(t.Add(RestartStep), evRestart)
		e.i, e.gen = i, k+1
		s.push(e)
	}
}
