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
