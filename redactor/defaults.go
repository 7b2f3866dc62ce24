package redactor

// DefaultBatch is how many records one transaction holds at most.
const DefaultBatch = 1000
