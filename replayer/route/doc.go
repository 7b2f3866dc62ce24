// Package route owns what a replayer decides about one captured request
// before it is sent: whether it is selected (Match: methods, path globs,
// excluded paths, header globs) and how it is rewritten (Transform: headers
// set, removed and renamed, the path rewritten by a regular expression, JSON
// body fields set or deleted, query parameters added). It works on a copy
// of the captured request (mlv1.Request), so what it produces is checked
// again, like any captured request-target, before a URL is built from it.
package route
