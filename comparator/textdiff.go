package comparator

import (
	"fmt"
	"strings"
)

// Bounds of the line diff.
const (
	maxLCSCells     = 1 << 20 // middle part compared line by line at most (rows x cols)
	maxDetailLines  = 24
	maxDetailBytes  = 2048
	maxDetailLineLn = 160
)

// lineOp is one line of an edit script.
type lineOp struct {
	op   byte // ' ', '-', '+'
	line string
	a, b int // 1-based line numbers in primary / shadow (0 when absent)
}

// splitLines splits text into lines without their terminators.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	s = strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	return strings.Split(s, "\n")
}

// diffLines returns an edit script from a to b: common prefix and suffix are
// stripped and the middle is diffed by longest common subsequence when small
// enough, else replaced wholesale.
func diffLines(a, b []string) []lineOp {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var ops []lineOp
	for i := 0; i < pre; i++ {
		ops = append(ops, lineOp{op: ' ', line: a[i], a: i + 1, b: i + 1})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	if len(ma)*len(mb) <= maxLCSCells {
		ops = append(ops, lcsOps(ma, mb, pre)...)
	} else {
		for i, l := range ma {
			ops = append(ops, lineOp{op: '-', line: l, a: pre + i + 1})
		}
		for i, l := range mb {
			ops = append(ops, lineOp{op: '+', line: l, b: pre + i + 1})
		}
	}
	for i := 0; i < suf; i++ {
		ia, ib := len(a)-suf+i, len(b)-suf+i
		ops = append(ops, lineOp{op: ' ', line: a[ia], a: ia + 1, b: ib + 1})
	}
	return ops
}

// lcsOps diffs a and b (offset lines into their texts) by dynamic programming.
func lcsOps(a, b []string, offset int) []lineOp {
	n, m := len(a), len(b)
	// l[i][j] = LCS length of a[i:], b[j:]
	l := make([][]int32, n+1)
	for i := range l {
		l[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	var ops []lineOp
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, lineOp{op: ' ', line: a[i], a: offset + i + 1, b: offset + j + 1})
			i++
			j++
		case i < n && (j == m || l[i+1][j] >= l[i][j+1]):
			ops = append(ops, lineOp{op: '-', line: a[i], a: offset + i + 1})
			i++
		default:
			ops = append(ops, lineOp{op: '+', line: b[j], b: offset + j + 1})
			j++
		}
	}
	return ops
}

// unified renders the changed lines of ops with one line of context, in at
// most maxDetailLines lines and maxDetailBytes bytes.
func unified(ops []lineOp) (detail string, removed, added int) {
	keep := make([]bool, len(ops))
	for i, o := range ops {
		if o.op != ' ' {
			if o.op == '-' {
				removed++
			} else {
				added++
			}
			for k := max(0, i-1); k <= min(len(ops)-1, i+1); k++ {
				keep[k] = true
			}
		}
	}
	var b strings.Builder
	lines, last := 0, -2
	for i, o := range ops {
		if !keep[i] {
			continue
		}
		if lines >= maxDetailLines || b.Len() >= maxDetailBytes {
			b.WriteString("...\n")
			break
		}
		if i != last+1 {
			fmt.Fprintf(&b, "@@ primary line %d, shadow line %d @@\n", max(o.a, 1), max(o.b, 1))
		}
		last = i
		fmt.Fprintf(&b, "%c%s\n", o.op, cut(o.line, maxDetailLineLn))
		lines++
	}
	return b.String(), removed, added
}
