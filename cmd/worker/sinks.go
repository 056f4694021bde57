package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/webhook"
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

// webhookOpener opens the configured webhook destinations by name, each
// once, reading their URL and secret through getenv.
func webhookOpener(destinations []config.Destination, getenv func(string) string) jobs.WebhookOpener {
	var mu sync.Mutex
	opened := map[string]*webhook.Client{}
	return func(_ context.Context, name string) (*webhook.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := opened[name]; ok {
			return c, nil
		}
		for _, d := range destinations {
			if d.Name == name && d.Type == "webhook" {
				c, err := webhook.FromDestination(d, getenv)
				if err != nil {
					return nil, err
				}
				opened[name] = c
				return c, nil
			}
		}
		return nil, fmt.Errorf("%w: %s", jobs.ErrDestinationGone, name)
	}
}
