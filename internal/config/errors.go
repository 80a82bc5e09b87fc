package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a config file, with the place it was
// found. It prints as
//
//	FILE:LINE:COL: field.path: what is wrong (what would be right)
//
// Path is empty for problems that belong to no field (a YAML syntax error,
// an empty file); Line and Col are 1-based.
type Problem struct {
	File string
	Line int
	Col  int
	Path string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, max(p.Col, 1))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem found in one config file, sorted by position.
// Load and Parse return it (as *Errors) for anything wrong with the file,
// from a YAML syntax error to an alarm threshold in the wrong order.
type Errors struct {
	List []Problem
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, p := range e.List {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line, then column, then path, so the
// report reads top to bottom like the file. Equal positions keep the order
// in which they were found.
func sortProblems(list []Problem) {
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Path < b.Path
	})
}
