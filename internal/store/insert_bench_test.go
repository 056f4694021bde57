package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// BenchmarkInsertEvents measures InsertEvents on batches of 500 new
// events, one caller at a time; ns/event is the cost of one event,
// mostly the database's.
func BenchmarkInsertEvents(b *testing.B) {
	pool := storetest.Pool(b)
	tenant := storetest.NewTenant(b)
	at := time.Now().UTC().Truncate(time.Microsecond)
	batch := make([]audex.Event, 500)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = newEvent(fmt.Sprintf("evt_%012d", n), at.Add(-time.Duration(n)*time.Millisecond))
			batch[i].Actor.ID = fmt.Sprintf("actor-%d", n%97)
		}
		if _, err := store.InsertEvents(b.Context(), pool, tenant, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
