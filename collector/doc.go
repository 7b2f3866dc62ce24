// Package collector owns what every capture collector shares: the Emitter that
// turns a captured exchange into a record on mirror.raw.<service> without ever
// blocking the capture path, its metrics (captured, dropped by reason, publish
// latency), and ids. The collectors themselves live in sub-packages (proxy, ...).
package collector
