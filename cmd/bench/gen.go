package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
)

// actionDef is one action of the synthetic catalogue: what it is done to
// and with which HTTP method.
type actionDef struct {
	name   string
	target string // target kind, see generator.target; "" for none
	method string
}

// commonActions are drawn Zipf-like: the first is by far the most frequent.
var commonActions = []actionDef{
	{"document.viewed", "document", "GET"},
	{"user.login", "self", "POST"},
	{"document.updated", "document", "PATCH"},
	{"token.issued", "token", "POST"},
	{"agent.tool_called", "tool", "POST"},
	{"document.created", "document", "POST"},
	{"project.viewed", "project", "GET"},
	{"user.logout", "self", "POST"},
	{"secret.read", "secret", "GET"},
	{"document.shared", "document", "POST"},
	{"file.downloaded", "file", "GET"},
	{"file.uploaded", "file", "POST"},
	{"member.invited", "member", "POST"},
	{"comment.created", "document", "POST"},
	{"document.deleted", "document", "DELETE"},
	{"user.login_failed", "self", "POST"},
	{"api_key.used", "api_key", "POST"},
	{"project.updated", "project", "PATCH"},
	{"integration.synced", "integration", "POST"},
	{"role.assigned", "member", "PUT"},
	{"member.removed", "member", "DELETE"},
	{"webhook.delivered", "webhook", "POST"},
	{"secret.rotated", "secret", "POST"},
	{"project.created", "project", "POST"},
	{"user.password_changed", "self", "POST"},
	{"user.mfa_enabled", "self", "POST"},
	{"export.requested", "export", "POST"},
}

// rareActions each happen about once in rareActionEvery events: the
// "rare value" of the action filter.
var rareActions = []actionDef{
	{"project.deleted", "project", "DELETE"},
	{"sso.config_updated", "org", "PUT"},
	{"billing.plan_changed", "org", "PUT"},
}

const rareActionEvery = 10_000

// subnets are the /16s that source addresses come from: office, VPN and
// two cluster networks.
var subnets = [4][2]byte{{10, 20}, {10, 30}, {172, 16}, {172, 17}}

var (
	integrations = []string{"salesforce", "github", "slack", "jira", "okta"}
	tools        = []string{"search", "code_exec", "email_send", "calendar", "crm_lookup", "web_fetch"}
	clients      = []string{"web", "cli", "sdk", "mobile"}
	browserUA    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	userAgents   = map[string][]string{
		"user":            {browserUA, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15", "audexctl/0.3.0"},
		"service_account": {"audex-python/1.4.2", "terraform/1.8.0", "Go-http-client/1.1"},
		"agent":           {"billing-bot/2.1", "scaivault-python/1.0"},
		"api_key":         {"curl/8.5.0", "Go-http-client/1.1"},
	}
)

// population sizes one tenant's world: how many actors, projects and so on
// its events are spread over.
type population struct {
	actors, projects, docsPerProject, secrets, webhooks, apiKeys int
}

// populationFor scales a tenant's world to the number of its events.
func populationFor(events int) population {
	clamp := func(v, lo, hi int) int { return max(lo, min(hi, v)) }
	return population{
		actors:         clamp(events/200, 20, 5000),
		projects:       clamp(events/3000, 5, 300),
		docsPerProject: 400,
		secrets:        clamp(events/2000, 10, 500),
		webhooks:       clamp(events/20000, 3, 50),
		apiKeys:        clamp(events/5000, 5, 200),
	}
}

// generator makes one tenant's synthetic events. It is deterministic for a
// seed and not safe for concurrent use.
type generator struct {
	rng     *rand.Rand
	pop     population
	actor   *rand.Zipf
	action  *rand.Zipf
	project *rand.Zipf
	doc     *rand.Zipf
	// seq numbers request ids; salt keeps different generators apart.
	seq, salt uint64
	entropy   [10]byte
}

func newGenerator(seed, salt uint64, pop population) *generator {
	rng := rand.New(rand.NewPCG(seed, salt))
	return &generator{
		rng:     rng,
		pop:     pop,
		actor:   rand.NewZipf(rng, 1.1, 1, uint64(pop.actors-1)),
		action:  rand.NewZipf(rng, 1.2, 1, uint64(len(commonActions)-1)),
		project: rand.NewZipf(rng, 1.1, 1, uint64(pop.projects-1)),
		doc:     rand.NewZipf(rng, 1.05, 2, uint64(pop.docsPerProject-1)),
		salt:    salt,
	}
}

// next returns a new event that occurred at t (received shortly after),
// with a server-style id ("evt_" + ULID of t), as the store holds it.
func (g *generator) next(t time.Time) audex.Event {
	r := int(g.actor.Uint64())
	e := audex.Event{OccurredAt: t, ReceivedAt: t.Add(time.Duration(20+g.rng.IntN(480)) * time.Millisecond)}
	e.ID = g.newID(t)
	e.Actor = actorOf(r)

	def := commonActions[g.action.Uint64()]
	if g.rng.IntN(rareActionEvery) < len(rareActions) {
		def = rareActions[g.rng.IntN(len(rareActions))]
	}
	e.Action, e.Method = def.name, ptr(def.method)
	resource := g.target(&e, def.target)
	e.Resource, e.Path = &resource, ptr("/api/v1/"+resource)

	success := g.rng.IntN(100) < 96 && def.name != "user.login_failed"
	status := 200
	switch {
	case !success:
		status = []int{401, 403, 404, 409, 500}[g.rng.IntN(5)]
	case def.method == "POST":
		status = 201
	case def.method == "DELETE":
		status = 204
	}
	e.Success, e.StatusCode = &success, &status
	e.DurationMS = ptr(int64(g.rng.ExpFloat64()*40) + 1)

	ip := homeIP(r, *e.Actor.Type)
	if g.rng.IntN(100) >= 85 {
		s := subnets[g.rng.IntN(len(subnets))]
		ip = netip.AddrFrom4([4]byte{s[0], s[1], byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
	}
	e.SourceIP = ptr(ip.String())
	uas := userAgents[*e.Actor.Type]
	e.UserAgent = ptr(uas[(r+g.rng.IntN(4))%len(uas)]) // a few agents per actor type
	g.seq++
	e.RequestID = ptr("req_" + strconv.FormatUint(mix(g.salt<<40|g.seq), 16))
	return e
}

// batch returns n new events occurring now, a microsecond apart, as an
// ingest client sends them (client.NewEvent): the server assigns their
// ids and received_at.
func (g *generator) batch(n int) []client.NewEvent {
	now := time.Now().UTC()
	events := make([]client.NewEvent, n)
	for i := range events {
		e := g.next(now.Add(time.Duration(i) * time.Microsecond))
		events[i] = newEvent(&e)
	}
	return events
}

// newID returns "evt_" and a ULID whose time is t: what the server assigns
// to an event ingested as it happens.
func (g *generator) newID(t time.Time) string {
	for i := range g.entropy {
		g.entropy[i] = byte(g.rng.Uint32())
	}
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(t))
	_ = u.SetEntropy(g.entropy[:])
	return "evt_" + u.String()
}

// target sets the target and metadata of an event whose action is done
// to a target of the given kind, and returns its resource.
func (g *generator) target(e *audex.Event, kind string) (resource string) {
	p := int(g.project.Uint64())
	project := "projects/p" + strconv.Itoa(p)
	client := clients[g.rng.IntN(len(clients))]
	set := func(typ, id, name, metadata string) {
		e.Target = &audex.Target{ID: &id, Type: &typ}
		if name != "" {
			e.Target.Name = &name
		}
		e.Metadata = json.RawMessage(metadata)
	}
	switch kind {
	case "document", "file":
		d := strconv.Itoa(p*1000 + int(g.doc.Uint64()))
		metadata := fmt.Sprintf(`{"client":%q,"version":%d}`, client, 1+g.rng.IntN(40))
		if kind == "document" {
			set("document", "doc_"+d, "Document "+d, metadata)
			return project + "/docs/d" + d
		}
		set("file", "file_"+d, "file-"+d+".pdf", metadata)
		return project + "/files/f" + d
	case "project":
		set("project", "prj_"+strconv.Itoa(p), "Project "+strconv.Itoa(p), fmt.Sprintf(`{"client":%q}`, client))
		return project
	case "self":
		set(*e.Actor.Type, e.Actor.ID, *e.Actor.Name,
			fmt.Sprintf(`{"method":%q,"mfa":%t}`, []string{"password", "sso", "passkey"}[g.rng.IntN(3)], g.rng.IntN(4) > 0))
		return "auth/sessions"
	case "member":
		a := actorOf(int(g.actor.Uint64()))
		set("user", a.ID, *a.Name, fmt.Sprintf(`{"role":%q}`, []string{"viewer", "editor", "admin"}[g.rng.IntN(3)]))
		return project + "/members"
	case "token":
		integration := integrations[g.rng.IntN(len(integrations))]
		set("token", "tok_"+strconv.FormatUint(g.rng.Uint64()>>16, 36), "", `{"grant_type":"client_credentials","scopes":["read","write"]}`)
		return "integrations/" + integration + "/oauth"
	case "tool":
		tool := tools[g.rng.IntN(len(tools))]
		set("tool", "tool_"+tool, tool, fmt.Sprintf(`{"tool":%q,"tokens":%d}`, tool, 50+g.rng.IntN(4000)))
		return "agents/" + e.Actor.ID + "/tools/" + tool
	case "secret":
		s := strconv.Itoa(g.rng.IntN(g.pop.secrets))
		set("secret", "sec_"+s, "SECRET_"+s, `{"version":"latest"}`)
		return project + "/secrets/s" + s
	case "api_key":
		k := strconv.Itoa(g.rng.IntN(g.pop.apiKeys))
		set("api_key", "key_"+k, "key "+k, `{}`)
		return "api-keys/k" + k
	case "integration":
		integration := integrations[g.rng.IntN(len(integrations))]
		set("integration", "int_"+integration, integration, fmt.Sprintf(`{"records":%d}`, g.rng.IntN(5000)))
		return "integrations/" + integration
	case "webhook":
		w := strconv.Itoa(g.rng.IntN(g.pop.webhooks))
		set("webhook", "wh_"+w, "", fmt.Sprintf(`{"attempt":%d}`, 1+g.rng.IntN(3)))
		return "webhooks/wh" + w
	case "export":
		set("export", "exp_"+strconv.FormatUint(g.rng.Uint64()>>16, 36), "", `{"format":"csv"}`)
		return project + "/exports"
	}
	// "org"
	set("org", "org", "Organisation", fmt.Sprintf(`{"client":%q}`, client))
	return "org/settings"
}

// actorOf returns the actor of Zipf rank r. The busiest actors are
// machines, as in most real audit logs.
func actorOf(r int) audex.Actor {
	kinds := []string{"service_account", "agent", "user", "service_account", "agent"}
	typ := "user"
	if r < len(kinds) {
		typ = kinds[r]
	} else {
		switch h := mix(uint64(r)) % 100; {
		case h < 70:
		case h < 82:
			typ = "service_account"
		case h < 94:
			typ = "agent"
		default:
			typ = "api_key"
		}
	}
	n := strconv.Itoa(r)
	id, name := "usr_"+n, "user"+n+"@example.com"
	switch typ {
	case "service_account":
		id, name = "sa_"+n, "ci-deployer-"+n
	case "agent":
		id, name = "agent_"+n, "billing-bot-"+n
	case "api_key":
		id, name = "key_"+n, "integration key "+n
	}
	return audex.Actor{ID: id, Type: &typ, Name: &name}
}

// homeIP is the address that actor r usually comes from: users from the
// office or VPN networks, machines from the cluster networks.
func homeIP(r int, actorType string) netip.Addr {
	h := mix(uint64(r) + 0x9e37)
	s := subnets[2+h%2]
	if actorType == "user" {
		s = subnets[h%2]
	}
	return netip.AddrFrom4([4]byte{s[0], s[1], byte(h >> 8), byte(1 + (h>>16)%254)})
}

// mix is splitmix64's finaliser: a bijection on uint64, so distinct inputs
// give distinct, random-looking outputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// timeline spreads n events over [start, end) with a weekly rhythm: busy
// working hours, quiet nights, quieter weekends. at(i) is the time of the
// i-th event and never decreases.
type timeline struct {
	start, end time.Time
	n          int
	cdf        []float64 // cumulative share of events by the end of each hour
}

func newTimeline(start, end time.Time, n int) timeline {
	hours := int(math.Ceil(end.Sub(start).Hours()))
	cdf := make([]float64, hours)
	total := 0.0
	for h := range hours {
		t := start.Add(time.Duration(h) * time.Hour)
		w := 1.0
		if hr := t.Hour(); hr >= 8 && hr < 19 {
			w = 4
		}
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 0.4
		}
		if h == hours-1 { // the last, partial hour
			w *= end.Sub(t).Hours()
		}
		total += w
		cdf[h] = total
	}
	for h := range cdf {
		cdf[h] /= total
	}
	return timeline{start: start, end: end, n: n, cdf: cdf}
}

func (tl timeline) at(i int) time.Time {
	u := (float64(i) + 0.5) / float64(tl.n)
	h := sort.SearchFloat64s(tl.cdf, u)
	h = min(h, len(tl.cdf)-1)
	lo := 0.0
	if h > 0 {
		lo = tl.cdf[h-1]
	}
	frac := (u - lo) / (tl.cdf[h] - lo)
	from := tl.start.Add(time.Duration(h) * time.Hour)
	span := min(time.Hour, tl.end.Sub(from)) // the last hour may be partial
	return from.Add(time.Duration(frac * float64(span))).Truncate(time.Microsecond)
}

// newEvent is e as an ingest client sends it (the SDK's shape): without
// id and received_at, which the server assigns.
func newEvent(e *audex.Event) client.NewEvent {
	var metadata map[string]any
	_ = json.Unmarshal(e.Metadata, &metadata) // the generator's own JSON objects
	return client.NewEvent{
		OccurredAt: e.OccurredAt, Action: e.Action, Actor: e.Actor, Target: e.Target,
		Resource: deref(e.Resource), SourceIP: deref(e.SourceIP), UserAgent: deref(e.UserAgent),
		RequestID: deref(e.RequestID), Method: deref(e.Method), Path: deref(e.Path),
		StatusCode: e.StatusCode, Success: e.Success, DurationMS: e.DurationMS, Metadata: metadata,
	}
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
