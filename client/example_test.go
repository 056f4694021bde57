package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/audex-dev/audex/client"
)

// The README's SDK program: ingest, list, export. (Compiled with the
// tests; client_test.go runs each call against a real server.)
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080", os.Getenv("AUDEX_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Events.Ingest(ctx, []client.NewEvent{{Action: "user.login", Actor: client.Actor{ID: "alice"}}})
	if err != nil {
		log.Fatal(err)
	}
	for e, err := range c.Events.List(ctx, client.ListParams{Filters: client.Filters{ActorID: "alice"}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.OccurredAt.Format(time.RFC3339), e.Action, e.Actor.ID)
	}
	job, err := c.Exports.Create(ctx, client.ExportRequest{Since: time.Now().AddDate(0, -1, 0), Until: time.Now(), Format: "jsonl", Destination: "local"})
	if err != nil {
		log.Fatal(err)
	}
	done, err := c.Exports.Wait(ctx, job.ID, client.WaitOptions{})
	fmt.Println(done.Status, done.Progress.RecordsExported, "records in", len(done.Files), "parts", err)
}
