// Package informerobj holds what every plugin's informer handlers and custom-resource clients
// need alike.
package informerobj

import (
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// As returns obj as a T, unwrapping the tombstone a delete handler may get instead of the
// object; ok is false for anything else.
func As[T any](obj any) (t T, ok bool) {
	if d, isTombstone := obj.(cache.DeletedFinalStateUnknown); isTombstone {
		obj = d.Obj
	}
	t, ok = obj.(T)
	return t, ok
}

// JSONConfig is cfg speaking JSON: the scheduler's connection speaks protobuf, which custom
// resources do not.
func JSONConfig(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.ContentType, out.AcceptContentTypes = "application/json", "application/json"
	return out
}
