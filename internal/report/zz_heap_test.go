package report

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

func TestZZHeap(t *testing.T) {
	path := os.Getenv("IMAGE_SWAPPER_BENCH_SQLITE")
	if path == "" {
		t.Skip()
	}
	ctx := context.Background()
	st, _ := store.OpenSQLite(ctx, path)
	defer st.Close()
	policy, _ := scan.NewPolicy(Options{}.Scanning)
	b := &builder{opts: Options{Now: time.Now()}, policy: policy, images: map[string]*imageAgg{}}
	var groups []*store.AdmissionGroup
	snap := func(name string) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		st, _ := os.ReadFile("/proc/self/status")
		var rss string
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "RssAnon") || strings.HasPrefix(l, "VmHWM") {
				rss += l + " "
			}
		}
		println(name, "heapInuse", m.HeapInuse>>20, "heapSys", m.HeapSys>>20, "released", m.HeapReleased>>20, "sys", m.Sys>>20, "alloc", m.HeapAlloc>>20, rss)
		runtime.GC()
		f, _ := os.Create("/tmp/rbench/heap-" + name + ".out")
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	n := 0
	if err := st.AdmissionGroups(ctx, store.Query{}, func(g *store.AdmissionGroup) error {
		if n == 0 {
			println("groups")
			snap("groups")
		}
		n++
		groups = append(groups, g)
		return b.addGroup(g)
	}); err != nil {
		t.Fatal(err)
	}
	snap("built")
	println("built")
	b.fold()
	b.indexTargets()
	st.CopySummaries(ctx, time.Time{}, b.addCopy)
	b.index()
	st.LatestScans(ctx, b.addScan)
	st.ScanSummaries(ctx, b.addScanEvent)
	println("scanned")
	snap("scanned")
	r := &Report{}
	b.finish(r)
	println("finished")
	snap("finished")
	f, _ := os.Create("/tmp/rbench/zz.json")
	WriteJSON(f, r)
	f.Close()
	snap("written")
	runtime.KeepAlive(b)
	runtime.KeepAlive(r)
	_ = groups
}
