package audex

// Summary aggregates a tenant's events that match a filter.
type Summary struct {
	TotalEvents      int64            `json:"total_events"`
	SuccessfulEvents int64            `json:"successful_events"`
	FailedEvents     int64            `json:"failed_events"`
	ActionsBreakdown map[string]int64 `json:"actions_breakdown"`
	TopActors        []ActorCount     `json:"top_actors"`
	TopTargets       []TargetCount    `json:"top_targets"`
	TopResources     []ResourceCount  `json:"top_resources"`
	TopSourceIPs     []SourceIPCount  `json:"top_source_ips"`
	// EventsPerDay has one entry per UTC day of the window that holds a
	// matching event, oldest first.
	EventsPerDay []DayCount `json:"events_per_day"`
}

// ActorCount is one entry of Summary.TopActors.
type ActorCount struct {
	ActorID string `json:"actor_id"`
	Count   int64  `json:"count"`
}

// TargetCount is one entry of Summary.TopTargets.
type TargetCount struct {
	TargetID string `json:"target_id"`
	Count    int64  `json:"count"`
}

// ResourceCount is one entry of Summary.TopResources.
type ResourceCount struct {
	Resource string `json:"resource"`
	Count    int64  `json:"count"`
}

// SourceIPCount is one entry of Summary.TopSourceIPs.
type SourceIPCount struct {
	SourceIP string `json:"source_ip"`
	Count    int64  `json:"count"`
}

// DayCount is one entry of Summary.EventsPerDay: the matching events of a
// UTC day (as 2006-01-02) and how many of them failed.
type DayCount struct {
	Day    string `json:"day"`
	Events int64  `json:"events"`
	Failed int64  `json:"failed"`
}
