package stage_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every consumer in mirrorline's stages is built on stage.ConsumeOpts or
// stage.GroupOpts (or one of the runtime's constructors, which use them), so none can forget to read committed: a source
// file that subscribes a kgo client must build it from them.
func TestEveryConsumerReadsCommitted(t *testing.T) {
	subscribe := regexp.MustCompile(`kgo\.(ConsumeTopics|ConsumePartitions|ConsumeRegex|ConsumerGroup)\(`)
	built := regexp.MustCompile(`\b(stage\.)?(ConsumeOpts|GroupOpts)\(`)
	var checked int
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Tests, benchmarks and their harnesses read as they need to.
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || name == "test" || name == "bench" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !subscribe.Match(src) {
			return nil
		}
		checked++
		if !built.Match(src) {
			t.Errorf("%s subscribes a Kafka consumer without stage.ConsumeOpts or stage.GroupOpts (read committed)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 2 {
		t.Fatalf("found only %d consumer sources; the walk missed the stages", checked)
	}
}
