package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/sinks"
)

// sinkOpener maps configured destinations to sinks, opening each once.
func sinkOpener(destinations []config.Destination, getenv func(string) string) jobs.SinkOpener {
	var mu sync.Mutex
	opened := map[string]sinks.Sink{}
	return func(ctx context.Context, name string) (sinks.Sink, error) {
		mu.Lock()
		defer mu.Unlock()
		if s, ok := opened[name]; ok {
			return s, nil
		}
		for _, d := range destinations {
			if d.Name != name {
				continue
			}
			s, err := sinks.New(ctx, sinks.FromDestination(d), getenv)
			if err != nil {
				return nil, fmt.Errorf("open destination %s: %w", name, err)
			}
			opened[name] = s
			return s, nil
		}
		return nil, fmt.Errorf("%w: %s", jobs.ErrDestinationGone, name)
	}
}
