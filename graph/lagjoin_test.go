package graph

// lagMsgs returns a lag in messages for a lag.Status.
func lagMsgs(v float64) *float64 { return &v }
