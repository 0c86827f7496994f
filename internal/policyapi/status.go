package policyapi

import (
	"fmt"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// NextStatus is the status an object at generation gen gets for outcome
// o, starting from its current status: conditions whose status does not
// change keep their lastTransitionTime, so that replicas computing the
// same outcome write the same status (and so write nothing). changed
// reports whether it differs from current.
func NextStatus(current Status, o Outcome, gen int64, now metav1.Time) (next Status, changed bool) {
	next = Status{ObservedGeneration: gen, Conditions: slices.Clone(current.Conditions)}
	set := func(typ string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&next.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: gen, LastTransitionTime: now,
		})
	}
	set(ConditionAccepted, o.Accepted, o.Reason, o.Message)
	if o.Accepted {
		set(ConditionReady, true, ReasonInForce, "in force in the webhook")
	} else {
		set(ConditionReady, false, ReasonNotAccepted, "not in force: not accepted")
	}
	if o.Exceptions {
		set(ConditionExceptionsAccepted, o.ExceptionsAccepted, o.ExceptionsReason, o.ExceptionsMessage)
	} else {
		meta.RemoveStatusCondition(&next.Conditions, ConditionExceptionsAccepted)
	}
	return next, !reflect.DeepEqual(current, next)
}

// withStatus returns a copy of u with status s.
func withStatus(u *unstructured.Unstructured, s Status) (*unstructured.Unstructured, error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
	if err != nil {
		return nil, fmt.Errorf("encoding the status of %s: %w", u.GetName(), err)
	}
	out := u.DeepCopy()
	out.Object["status"] = raw
	return out, nil
}

// fromUnstructured converts a cached object into T.
func fromUnstructured[T any](u *unstructured.Unstructured) (T, error) {
	var out T
	err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &out)
	return out, err
}
