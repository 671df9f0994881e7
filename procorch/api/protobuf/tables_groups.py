"""Field tables for meta/v1 (ObjectMeta, LabelSelector, Condition, ...) and for every served
API group outside core: apps, batch, networking.k8s.io, discovery.k8s.io,
coordination.k8s.io, autoscaling (v1 and v2), rbac.authorization.k8s.io,
authentication.k8s.io (TokenRequest, SelfSubjectReview), authorization.k8s.io (the self
reviews), policy and scheduling.k8s.io. Numbering follows each
group's ``generated.proto`` in k8s.io/api (k8s.io/apimachinery for meta/v1); the notation
is described in :mod:`procorch.api.protobuf.schema`.

Pure data.
"""

from __future__ import annotations

META: dict[str, str] = {
    "ObjectMeta": (
        "1 name; 2 generateName; 3 namespace; 4 selfLink; 5 uid; 6 resourceVersion; "
        "7 generation:int; 8 creationTimestamp:Time; 9 deletionTimestamp?:Time; "
        "10 deletionGracePeriodSeconds?:int; 11 labels{}; 12 annotations{}; "
        "13 ownerReferences*:OwnerReference; 14 finalizers*; 17 managedFields*:ManagedFieldsEntry"
    ),
    "OwnerReference": (
        "5 apiVersion; 1 kind; 3 name; 4 uid; 6 controller?:bool; 7 blockOwnerDeletion?:bool"
    ),
    "ManagedFieldsEntry": (
        "1 manager; 2 operation; 3 apiVersion; 4 time?:Time; 6 fieldsType; 7 fieldsV1?:Raw; "
        "8 subresource"
    ),
    "Condition": (
        "1 type; 2 status; 3 observedGeneration:int; 4 lastTransitionTime:Time; 5 reason; 6 message"
    ),
    "LabelSelector": "1 matchLabels{}; 2 matchExpressions*:LabelSelectorRequirement",
    "LabelSelectorRequirement": "1 key; 2 operator; 3 values*",
    "DeleteOptions": (
        "1 gracePeriodSeconds?:int; 2 preconditions?:Preconditions; 3 orphanDependents?:bool; "
        "4 propagationPolicy?; 5 dryRun*; 6 ignoreStoreReadErrorWithClusterBreakingPotential?:bool"
    ),
    "Preconditions": "1 uid?; 2 resourceVersion?",
}

APPS: dict[str, str] = {
    "Deployment": "1 metadata:meta.ObjectMeta; 2 spec:DeploymentSpec; 3 status:DeploymentStatus",
    "ReplicaSet": "1 metadata:meta.ObjectMeta; 2 spec:ReplicaSetSpec; 3 status:ReplicaSetStatus",
    "DeploymentSpec": (
        "1 replicas?:int; 2 selector?:meta.LabelSelector; 3 template:core.PodTemplateSpec; "
        "4 strategy:DeploymentStrategy; 5 minReadySeconds:int; 6 revisionHistoryLimit?:int; "
        "7 paused:bool; 9 progressDeadlineSeconds?:int"
    ),
    "DeploymentStatus": (
        "1 observedGeneration:int; 2 replicas:int; 3 updatedReplicas:int; 7 readyReplicas:int; "
        "4 availableReplicas:int; 5 unavailableReplicas:int; 9 terminatingReplicas?:int; "
        "6 conditions*:DeploymentCondition; 8 collisionCount?:int"
    ),
    "ReplicaSetSpec": (
        "1 replicas?:int; 4 minReadySeconds:int; 2 selector?:meta.LabelSelector; "
        "3 template:core.PodTemplateSpec"
    ),
    "ReplicaSetStatus": (
        "1 replicas:int; 2 fullyLabeledReplicas:int; 4 readyReplicas:int; 5 availableReplicas:int; "
        "7 terminatingReplicas?:int; 3 observedGeneration:int; 6 conditions*:ReplicaSetCondition"
    ),
    "DeploymentStrategy": "1 type; 2 rollingUpdate?:RollingUpdateDeployment",
    "DeploymentCondition": (
        "1 type; 2 status; 6 lastUpdateTime:Time; 7 lastTransitionTime:Time; 4 reason; 5 message"
    ),
    "ReplicaSetCondition": "1 type; 2 status; 3 lastTransitionTime:Time; 4 reason; 5 message",
    "RollingUpdateDeployment": "1 maxUnavailable?:IntOrString; 2 maxSurge?:IntOrString",
    "DaemonSet": "1 metadata:meta.ObjectMeta; 2 spec:DaemonSetSpec; 3 status:DaemonSetStatus",
    "DaemonSetSpec": (
        "1 selector?:meta.LabelSelector; 2 template:core.PodTemplateSpec; "
        "3 updateStrategy:DaemonSetUpdateStrategy; 4 minReadySeconds:int; "
        "6 revisionHistoryLimit?:int"
    ),
    "DaemonSetUpdateStrategy": "1 type; 2 rollingUpdate?:RollingUpdateDaemonSet",
    "RollingUpdateDaemonSet": "1 maxUnavailable?:IntOrString; 2 maxSurge?:IntOrString",
    "DaemonSetStatus": (
        "1 currentNumberScheduled:int; 2 numberMisscheduled:int; 3 desiredNumberScheduled:int; "
        "4 numberReady:int; 5 observedGeneration:int; 6 updatedNumberScheduled:int; "
        "7 numberAvailable:int; 8 numberUnavailable:int; 9 collisionCount?:int; "
        "10 conditions*:DaemonSetCondition"
    ),
    "DaemonSetCondition": "1 type; 2 status; 3 lastTransitionTime:Time; 4 reason; 5 message",
}

BATCH: dict[str, str] = {
    "Job": "1 metadata:meta.ObjectMeta; 2 spec:JobSpec; 3 status:JobStatus",
    "CronJob": "1 metadata:meta.ObjectMeta; 2 spec:CronJobSpec; 3 status:CronJobStatus",
    "JobSpec": (
        "1 parallelism?:int; 2 completions?:int; 3 activeDeadlineSeconds?:int; "
        "11 podFailurePolicy?:PodFailurePolicy; 16 successPolicy?:SuccessPolicy; "
        "7 backoffLimit?:int; 12 backoffLimitPerIndex?:int; 13 maxFailedIndexes?:int; "
        "4 selector?:meta.LabelSelector; 5 manualSelector?:bool; 6 template:core.PodTemplateSpec; "
        "8 ttlSecondsAfterFinished?:int; 9 completionMode?; 10 suspend?:bool; "
        "14 podReplacementPolicy?; 15 managedBy?"
    ),
    "JobStatus": (
        "1 conditions*:JobCondition; 2 startTime?:Time; 3 completionTime?:Time; 4 active:int; "
        "5 succeeded:int; 6 failed:int; 11 terminating?:int; 7 completedIndexes; "
        "10 failedIndexes?; 8 uncountedTerminatedPods?:UncountedTerminatedPods; 9 ready?:int"
    ),
    "CronJobSpec": (
        "1 schedule; 8 timeZone?; 2 startingDeadlineSeconds?:int; 3 concurrencyPolicy; "
        "4 suspend?:bool; 5 jobTemplate:JobTemplateSpec; 6 successfulJobsHistoryLimit?:int; "
        "7 failedJobsHistoryLimit?:int"
    ),
    "CronJobStatus": (
        "1 active*:core.ObjectReference; 4 lastScheduleTime?:Time; 5 lastSuccessfulTime?:Time"
    ),
    "PodFailurePolicy": "1 rules*:PodFailurePolicyRule",
    "SuccessPolicy": "1 rules*:SuccessPolicyRule",
    "JobCondition": (
        "1 type; 2 status; 3 lastProbeTime:Time; 4 lastTransitionTime:Time; 5 reason; 6 message"
    ),
    "UncountedTerminatedPods": "1 succeeded*; 2 failed*",
    "JobTemplateSpec": "1 metadata:meta.ObjectMeta; 2 spec:JobSpec",
    "PodFailurePolicyRule": (
        "1 action; 2 onExitCodes?:PodFailurePolicyOnExitCodesRequirement; "
        "3 onPodConditions*:PodFailurePolicyOnPodConditionsPattern"
    ),
    "SuccessPolicyRule": "1 succeededIndexes?; 2 succeededCount?:int",
    "PodFailurePolicyOnExitCodesRequirement": "1 containerName?; 2 operator; 3 values*:int",
    "PodFailurePolicyOnPodConditionsPattern": "1 type; 2 status",
}

NETWORKING: dict[str, str] = {
    "Ingress": "1 metadata:meta.ObjectMeta; 2 spec:IngressSpec; 3 status:IngressStatus",
    "IngressClass": "1 metadata:meta.ObjectMeta; 2 spec:IngressClassSpec",
    "IngressSpec": (
        "4 ingressClassName?; 1 defaultBackend?:IngressBackend; 2 tls*:IngressTLS; "
        "3 rules*:IngressRule"
    ),
    "IngressStatus": "1 loadBalancer:IngressLoadBalancerStatus",
    "IngressClassSpec": "1 controller; 2 parameters?:IngressClassParametersReference",
    "IngressBackend": (
        "4 service?:IngressServiceBackend; 3 resource?:core.TypedLocalObjectReference"
    ),
    "IngressTLS": "1 hosts*; 2 secretName",
    "IngressRule": "1 host; 2 ingressRuleValue^:IngressRuleValue",
    "IngressLoadBalancerStatus": "1 ingress*:IngressLoadBalancerIngress",
    "IngressClassParametersReference": "1 apiGroup?; 2 kind; 3 name; 4 scope?; 5 namespace?",
    "IngressServiceBackend": "1 name; 2 port:ServiceBackendPort",
    "IngressRuleValue": "1 http?:HTTPIngressRuleValue",
    "IngressLoadBalancerIngress": "1 ip; 2 hostname; 4 ports*:IngressPortStatus",
    "ServiceBackendPort": "1 name; 2 number:int",
    "HTTPIngressRuleValue": "1 paths*:HTTPIngressPath",
    "IngressPortStatus": "1 port:int; 2 protocol; 3 error?",
    "HTTPIngressPath": "1 path; 3 pathType?; 2 backend:IngressBackend",
}

DISCOVERY: dict[str, str] = {
    "EndpointSlice": (
        "1 metadata:meta.ObjectMeta; 4 addressType; 2 endpoints*:Endpoint; 3 ports*:EndpointPort"
    ),
    "Endpoint": (
        "1 addresses*; 2 conditions:EndpointConditions; 3 hostname?; "
        "4 targetRef?:core.ObjectReference; 5 deprecatedTopology{}; 6 nodeName?; 7 zone?; "
        "8 hints?:EndpointHints"
    ),
    "EndpointPort": "1 name?; 2 protocol?; 3 port?:int; 4 appProtocol?",
    "EndpointConditions": "1 ready?:bool; 2 serving?:bool; 3 terminating?:bool",
    "EndpointHints": "1 forZones*:ForZone; 2 forNodes*:ForNode",
    "ForZone": "1 name",
    "ForNode": "1 name",
}

COORDINATION: dict[str, str] = {
    "Lease": "1 metadata:meta.ObjectMeta; 2 spec:LeaseSpec",
    "LeaseSpec": (
        "1 holderIdentity?; 2 leaseDurationSeconds?:int; 3 acquireTime?:MicroTime; "
        "4 renewTime?:MicroTime; 5 leaseTransitions?:int; 6 strategy?; 7 preferredHolder?"
    ),
}

AUTOSCALINGV1: dict[str, str] = {
    "HorizontalPodAutoscaler": (
        "1 metadata:meta.ObjectMeta; 2 spec:HorizontalPodAutoscalerSpec; "
        "3 status:HorizontalPodAutoscalerStatus"
    ),
    "Scale": "1 metadata:meta.ObjectMeta; 2 spec:ScaleSpec; 3 status:ScaleStatus",
    "HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef:CrossVersionObjectReference; 2 minReplicas?:int; 3 maxReplicas:int; "
        "4 targetCPUUtilizationPercentage?:int"
    ),
    "HorizontalPodAutoscalerStatus": (
        "1 observedGeneration?:int; 2 lastScaleTime?:Time; 3 currentReplicas:int; "
        "4 desiredReplicas:int; 5 currentCPUUtilizationPercentage?:int"
    ),
    "ScaleSpec": "1 replicas:int",
    "ScaleStatus": "1 replicas:int; 2 selector",
    "CrossVersionObjectReference": "1 kind; 2 name; 3 apiVersion",
}

AUTOSCALINGV2: dict[str, str] = {
    "HorizontalPodAutoscaler": (
        "1 metadata:meta.ObjectMeta; 2 spec:HorizontalPodAutoscalerSpec; "
        "3 status:HorizontalPodAutoscalerStatus"
    ),
    "HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef:CrossVersionObjectReference; 2 minReplicas?:int; 3 maxReplicas:int; "
        "4 metrics*:MetricSpec; 5 behavior?:HorizontalPodAutoscalerBehavior"
    ),
    "HorizontalPodAutoscalerStatus": (
        "1 observedGeneration?:int; 2 lastScaleTime?:Time; 3 currentReplicas:int; "
        "4 desiredReplicas:int; 5 currentMetrics*:MetricStatus; "
        "6 conditions*:HorizontalPodAutoscalerCondition"
    ),
    "CrossVersionObjectReference": "1 kind; 2 name; 3 apiVersion",
    "MetricSpec": (
        "1 type; 2 object?:ObjectMetricSource; 3 pods?:PodsMetricSource; "
        "4 resource?:ResourceMetricSource; 7 containerResource?:ContainerResourceMetricSource; "
        "5 external?:ExternalMetricSource"
    ),
    "HorizontalPodAutoscalerBehavior": "1 scaleUp?:HPAScalingRules; 2 scaleDown?:HPAScalingRules",
    "MetricStatus": (
        "1 type; 2 object?:ObjectMetricStatus; 3 pods?:PodsMetricStatus; "
        "4 resource?:ResourceMetricStatus; 7 containerResource?:ContainerResourceMetricStatus; "
        "5 external?:ExternalMetricStatus"
    ),
    "HorizontalPodAutoscalerCondition": (
        "1 type; 2 status; 3 lastTransitionTime:Time; 4 reason; 5 message"
    ),
    "ObjectMetricSource": (
        "1 describedObject:CrossVersionObjectReference; 2 target:MetricTarget; "
        "3 metric:MetricIdentifier"
    ),
    "PodsMetricSource": "1 metric:MetricIdentifier; 2 target:MetricTarget",
    "ResourceMetricSource": "1 name; 2 target:MetricTarget",
    "ContainerResourceMetricSource": "1 name; 2 target:MetricTarget; 3 container",
    "ExternalMetricSource": "1 metric:MetricIdentifier; 2 target:MetricTarget",
    "HPAScalingRules": (
        "3 stabilizationWindowSeconds?:int; 1 selectPolicy?; 2 policies*:HPAScalingPolicy; "
        "4 tolerance?:Quantity"
    ),
    "ObjectMetricStatus": (
        "1 metric:MetricIdentifier; 2 current:MetricValueStatus; "
        "3 describedObject:CrossVersionObjectReference"
    ),
    "PodsMetricStatus": "1 metric:MetricIdentifier; 2 current:MetricValueStatus",
    "ResourceMetricStatus": "1 name; 2 current:MetricValueStatus",
    "ContainerResourceMetricStatus": "1 name; 2 current:MetricValueStatus; 3 container",
    "ExternalMetricStatus": "1 metric:MetricIdentifier; 2 current:MetricValueStatus",
    "MetricTarget": (
        "1 type; 2 value?:Quantity; 3 averageValue?:Quantity; 4 averageUtilization?:int"
    ),
    "MetricIdentifier": "1 name; 2 selector?:meta.LabelSelector",
    "HPAScalingPolicy": "1 type; 2 value:int; 3 periodSeconds:int",
    "MetricValueStatus": "1 value?:Quantity; 2 averageValue?:Quantity; 3 averageUtilization?:int",
}

RBAC: dict[str, str] = {
    "Role": "1 metadata:meta.ObjectMeta; 2 rules*:PolicyRule",
    "RoleBinding": "1 metadata:meta.ObjectMeta; 2 subjects*:Subject; 3 roleRef:RoleRef",
    "ClusterRole": (
        "1 metadata:meta.ObjectMeta; 2 rules*:PolicyRule; 3 aggregationRule?:AggregationRule"
    ),
    "ClusterRoleBinding": "1 metadata:meta.ObjectMeta; 2 subjects*:Subject; 3 roleRef:RoleRef",
    "PolicyRule": "1 verbs*; 2 apiGroups*; 3 resources*; 4 resourceNames*; 5 nonResourceURLs*",
    "Subject": "1 kind; 2 apiGroup; 3 name; 4 namespace",
    "RoleRef": "1 apiGroup; 2 kind; 3 name",
    "AggregationRule": "1 clusterRoleSelectors*:meta.LabelSelector",
}

AUTHENTICATION: dict[str, str] = {
    "TokenRequest": (
        "1 metadata:meta.ObjectMeta; 2 spec:TokenRequestSpec; 3 status:TokenRequestStatus"
    ),
    "TokenRequestSpec": (
        "1 audiences*; 4 expirationSeconds?:int; 3 boundObjectRef?:BoundObjectReference"
    ),
    "TokenRequestStatus": "1 token; 2 expirationTimestamp:Time",
    "BoundObjectReference": "1 kind; 2 apiVersion; 3 name; 4 uid",
    # kubectl auth whoami
    "SelfSubjectReview": "1 metadata:meta.ObjectMeta; 2 status:SelfSubjectReviewStatus",
    "SelfSubjectReviewStatus": "1 userInfo:UserInfo",
    "UserInfo": "1 username; 2 uid; 3 groups*",
}

# kubectl auth can-i (and can-i --list)
AUTHORIZATION: dict[str, str] = {
    "SelfSubjectAccessReview": (
        "1 metadata:meta.ObjectMeta; 2 spec:SelfSubjectAccessReviewSpec; "
        "3 status:SubjectAccessReviewStatus"
    ),
    "SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes?:ResourceAttributes; 2 nonResourceAttributes?:NonResourceAttributes"
    ),
    "ResourceAttributes": (
        "1 namespace; 2 verb; 3 group; 4 version; 5 resource; 6 subresource; 7 name"
    ),
    "NonResourceAttributes": "1 path; 2 verb",
    "SubjectAccessReviewStatus": "1 allowed:bool; 4 denied:bool; 2 reason; 3 evaluationError",
    "SelfSubjectRulesReview": (
        "1 metadata:meta.ObjectMeta; 2 spec:SelfSubjectRulesReviewSpec; "
        "3 status:SubjectRulesReviewStatus"
    ),
    "SelfSubjectRulesReviewSpec": "1 namespace",
    "SubjectRulesReviewStatus": (
        "1 resourceRules*:ResourceRule; 2 nonResourceRules*:NonResourceRule; "
        "3 incomplete:bool; 4 evaluationError"
    ),
    "ResourceRule": "1 verbs*; 2 apiGroups*; 3 resources*; 4 resourceNames*",
    "NonResourceRule": "1 verbs*; 2 nonResourceURLs*",
}

POLICY: dict[str, str] = {
    "Eviction": "1 metadata:meta.ObjectMeta; 2 deleteOptions?:meta.DeleteOptions",
    "PodDisruptionBudget": (
        "1 metadata:meta.ObjectMeta; 2 spec:PodDisruptionBudgetSpec; "
        "3 status:PodDisruptionBudgetStatus"
    ),
    "PodDisruptionBudgetSpec": (
        "1 minAvailable?:IntOrString; 2 selector?:meta.LabelSelector; "
        "3 maxUnavailable?:IntOrString; 4 unhealthyPodEvictionPolicy?"
    ),
    "PodDisruptionBudgetStatus": (
        "1 observedGeneration:int; 2 disruptedPods{}:Time; 3 disruptionsAllowed:int; "
        "4 currentHealthy:int; 5 desiredHealthy:int; 6 expectedPods:int; "
        "7 conditions*:meta.Condition"
    ),
}

SCHEDULING: dict[str, str] = {
    "PriorityClass": (
        "1 metadata:meta.ObjectMeta; 2 value:int; 3 globalDefault:bool; 4 description; "
        "5 preemptionPolicy?"
    ),
}


TABLES: dict[str, dict[str, str]] = {
    "meta": META,
    "apps": APPS,
    "batch": BATCH,
    "networking": NETWORKING,
    "discovery": DISCOVERY,
    "coordination": COORDINATION,
    "autoscalingv1": AUTOSCALINGV1,
    "autoscalingv2": AUTOSCALINGV2,
    "rbac": RBAC,
    "authentication": AUTHENTICATION,
    "authorization": AUTHORIZATION,
    "policy": POLICY,
    "scheduling": SCHEDULING,
}
