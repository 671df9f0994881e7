"""The type models: real manifests decode, shape errors point at their field, and the schema
carries Kubernetes' list and patch semantics."""

from __future__ import annotations

import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from procorch.api import resources
from procorch.api.registry import BUILTIN, model_for, schema_for
from procorch.api.types import BODY_MODELS
from procorch.api.types.base import K8sModel
from procorch.api.types.core_container import Container, EphemeralContainer
from procorch.api.types.meta import DeleteOptions

# --- real-world manifests -------------------------------------------------------------------
# Timestamps are quoted because YAML would otherwise turn them into datetimes; kubectl's YAML
# reader keeps them as strings.

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app.kubernetes.io/name: web, app.kubernetes.io/part-of: shop}
  annotations: {deployment.kubernetes.io/revision: "3"}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  progressDeadlineSeconds: 600
  minReadySeconds: 5
  selector:
    matchLabels: {app.kubernetes.io/name: web}
    matchExpressions:
      - {key: tier, operator: In, values: [frontend, edge]}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web, tier: frontend}
      annotations: {prometheus.io/scrape: "true"}
    spec:
      serviceAccountName: web
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 45
      priorityClassName: high
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 2000
        fsGroupChangePolicy: OnRootMismatch
        supplementalGroups: [3000]
        seccompProfile: {type: RuntimeDefault}
        sysctls: [{name: net.ipv4.ip_local_port_range, value: "1024 65535"}]
      imagePullSecrets: [{name: registry-creds}]
      hostAliases: [{ip: 127.0.0.1, hostnames: [web.local]}]
      dnsPolicy: ClusterFirst
      dnsConfig:
        nameservers: [1.1.1.1]
        searches: [shop.svc.cluster.local]
        options: [{name: ndots, value: "2"}, {name: edns0}]
      nodeSelector: {kubernetes.io/os: linux}
      tolerations:
        - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
        - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
           tolerationSeconds: 300}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 10
              preference:
                matchExpressions: [{key: disktype, operator: In, values: [ssd]}]
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector: {matchLabels: {app.kubernetes.io/name: web}}
                matchLabelKeys: [pod-template-hash]
        podAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: topology.kubernetes.io/zone
              namespaceSelector: {}
              labelSelector: {matchLabels: {app: cache}}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector: {matchLabels: {app.kubernetes.io/name: web}}
          minDomains: 2
          nodeAffinityPolicy: Honor
          nodeTaintsPolicy: Ignore
          matchLabelKeys: [pod-template-hash]
      readinessGates: [{conditionType: example.com/feature-1}]
      initContainers:
        - name: migrate
          image: registry.example.com/shop/web:1.4.2
          command: [python, manage.py, migrate]
          envFrom:
            - configMapRef: {name: web-config}
            - secretRef: {name: web-secrets, optional: true}
              prefix: DB_
        - name: log-shipper
          image: fluent/fluent-bit:3.0
          restartPolicy: Always
      containers:
        - name: web
          image: registry.example.com/shop/web:1.4.2
          imagePullPolicy: IfNotPresent
          command: [gunicorn]
          args: [--bind, "0.0.0.0:$(PORT)", shop.wsgi]
          workingDir: /srv/app
          ports:
            - {name: http, containerPort: 8000, protocol: TCP}
            - {name: metrics, containerPort: 9100}
          env:
            - {name: PORT, value: "8000"}
            - name: POD_NAME
              valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.name}}
            - name: CPU_LIMIT
              valueFrom: {resourceFieldRef: {containerName: web, resource: limits.cpu,
                                             divisor: 1m}}
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
            - name: FEATURE_FLAGS
              valueFrom: {configMapKeyRef: {name: flags, key: web, optional: true}}
          resources:
            requests: {cpu: 250m, memory: 256Mi, ephemeral-storage: 1Gi}
            limits: {cpu: 1, memory: 512Mi}
          resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]
          volumeMounts:
            - {name: config, mountPath: /etc/web, readOnly: true}
            - {name: cache, mountPath: /var/cache/web}
            - {name: data, mountPath: /data, subPathExpr: $(POD_NAME)}
            - {name: tokens, mountPath: /var/run/secrets/tokens, readOnly: true,
               recursiveReadOnly: IfPossible, mountPropagation: None}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            failureThreshold: 30
            periodSeconds: 2
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8000
              scheme: HTTP
              httpHeaders: [{name: X-Probe, value: liveness}]
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
            terminationGracePeriodSeconds: 30
          readinessProbe:
            tcpSocket: {port: 8000}
            successThreshold: 1
          lifecycle:
            postStart:
              exec: {command: [sh, -c, "echo started > /tmp/started"]}
            preStop:
              sleep: {seconds: 5}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
            seLinuxOptions: {level: "s0:c123,c456"}
            appArmorProfile: {type: RuntimeDefault}
          terminationMessagePath: /dev/termination-log
          terminationMessagePolicy: FallbackToLogsOnError
        - name: grpc-sidecar
          image: example/sidecar:2
          livenessProbe:
            grpc: {port: 9090, service: health}
          lifecycle:
            preStop:
              httpGet: {path: /drain, port: 9090}
      volumes:
        - name: config
          configMap:
            name: web-config
            defaultMode: 0444
            items: [{key: settings.yaml, path: settings.yaml, mode: 0400}]
        - name: cache
          emptyDir: {medium: Memory, sizeLimit: 128Mi}
        - name: data
          persistentVolumeClaim: {claimName: web-data, readOnly: false}
        - name: host-logs
          hostPath: {path: /var/log, type: Directory}
        - name: secret-files
          secret: {secretName: web-tls, optional: false, items: [{key: tls.crt, path: cert}]}
        - name: podinfo
          downwardAPI:
            items:
              - {path: labels, fieldRef: {fieldPath: metadata.labels}}
              - {path: cpu, resourceFieldRef: {containerName: web, resource: requests.cpu}}
        - name: tokens
          projected:
            defaultMode: 0400
            sources:
              - serviceAccountToken: {audience: vault, expirationSeconds: 3600, path: vault}
              - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
              - secret: {name: extra, optional: true}
              - downwardAPI: {items: [{path: namespace,
                                       fieldRef: {fieldPath: metadata.namespace}}]}
              - clusterTrustBundle: {signerName: example.com/signer, path: bundle.pem,
                                     labelSelector: {matchLabels: {trust: "yes"}}}
        - name: scratch
          ephemeral:
            volumeClaimTemplate:
              metadata: {labels: {type: scratch}}
              spec:
                accessModes: [ReadWriteOnce]
                storageClassName: fast
                resources: {requests: {storage: 1Gi}}
        - name: shared
          nfs: {server: nfs.example.com, path: /exports/shared, readOnly: true}
        - name: secrets-store
          csi:
            driver: secrets-store.csi.k8s.io
            readOnly: true
            volumeAttributes: {secretProviderClass: web}
            nodePublishSecretRef: {name: csi-creds}
        - name: legacy-disk
          awsElasticBlockStore: {volumeID: vol-0123456789abcdef0, fsType: ext4}
"""

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly-report, namespace: reports}
spec:
  schedule: "30 2 * * *"
  timeZone: Europe/Paris
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 200
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  suspend: false
  jobTemplate:
    metadata: {labels: {job: nightly-report}}
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: 3600
      ttlSecondsAfterFinished: 86400
      completionMode: NonIndexed
      podReplacementPolicy: Failed
      podFailurePolicy:
        rules:
          - action: FailJob
            onExitCodes: {containerName: report, operator: In, values: [42]}
          - action: Ignore
            onPodConditions: [{type: DisruptionTarget, status: "True"}]
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: example/report:1
              command: [python, -m, report, --since, 24h]
              volumeMounts: [{name: out, mountPath: /out}]
          volumes:
            - name: out
              persistentVolumeClaim: {claimName: reports}
status:
  active:
    - {apiVersion: batch/v1, kind: Job, name: nightly-report-28912345, namespace: reports,
       uid: 2f0c1c4e-4b6f-4d67-9d2a-3bb0a2e7c9f1, resourceVersion: "8812"}
  lastScheduleTime: "2026-01-12T02:30:00Z"
  lastSuccessfulTime: "2026-01-11T02:31:12Z"
"""

INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  annotations: {cert-manager.io/cluster-issuer: letsencrypt}
spec:
  ingressClassName: procorch
  tls:
    - hosts: [shop.example.com, "*.shop.example.com"]
      secretName: shop-tls
  defaultBackend:
    service: {name: fallback, port: {number: 80}}
  rules:
    - host: shop.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
          - {path: /api/v1/health, pathType: Exact,
             backend: {service: {name: api, port: {number: 8080}}}}
    - host: "*.shop.example.com"
      http:
        paths:
          - path: /assets
            pathType: ImplementationSpecific
            backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}}
status:
  loadBalancer:
    ingress: [{ip: 127.0.0.1, ports: [{port: 80, protocol: TCP}]}]
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  type: NodePort
  selector: {app.kubernetes.io/name: web}
  clusterIP: 10.96.12.7
  clusterIPs: [10.96.12.7]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  externalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  publishNotReadyAddresses: false
  trafficDistribution: PreferClose
  ports:
    - {name: http, port: 80, targetPort: http, protocol: TCP, appProtocol: http,
       nodePort: 30080}
    - {name: metrics, port: 9100, targetPort: 9100}
status:
  loadBalancer: {}
  conditions:
    - {type: Ready, status: "True", observedGeneration: 2, reason: Ok, message: "",
       lastTransitionTime: "2026-01-10T09:00:00Z"}
"""

RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: shop}
rules:
  - apiGroups: [""]
    resources: [pods, pods/log]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [web-config]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: shop}
subjects:
  - {kind: ServiceAccount, name: web, namespace: shop}
  - {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}}]
rules:
  - nonResourceURLs: [/metrics, /healthz/*]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: monitoring}
subjects: [{kind: Group, name: system:monitoring, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: monitoring, apiGroup: rbac.authorization.k8s.io}
"""

HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 20
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
    - type: ContainerResource
      containerResource: {name: memory, container: web,
                          target: {type: AverageValue, averageValue: 400Mi}}
    - type: Pods
      pods:
        metric: {name: http_requests_per_second}
        target: {type: AverageValue, averageValue: "100"}
    - type: Object
      object:
        describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: shop}
        metric: {name: requests_per_second, selector: {matchLabels: {verb: GET}}}
        target: {type: Value, value: 10k}
    - type: External
      external:
        metric: {name: queue_messages_ready, selector: {matchLabels: {queue: orders}}}
        target: {type: AverageValue, averageValue: 30}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies:
        - {type: Percent, value: 100, periodSeconds: 15}
        - {type: Pods, value: 4, periodSeconds: 15}
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{type: Percent, value: 10, periodSeconds: 60}]
status:
  observedGeneration: 4
  lastScaleTime: "2026-01-12T10:00:00Z"
  currentReplicas: 3
  desiredReplicas: 4
  currentMetrics:
    - type: Resource
      resource: {name: cpu, current: {averageUtilization: 83, averageValue: 415m}}
  conditions:
    - {type: AbleToScale, status: "True", reason: SucceededRescale,
       message: the HPA controller was able to update the target scale to 4,
       lastTransitionTime: "2026-01-12T10:00:00Z"}
"""

POD_WITH_STATUS = """
apiVersion: v1
kind: Pod
metadata:
  name: web-7c9f8d6b5-x2kqp
  generateName: web-7c9f8d6b5-
  namespace: shop
  uid: 8a6c3f2e-1d4b-4c8e-9f7a-2b3c4d5e6f70
  resourceVersion: "48213"
  creationTimestamp: "2026-01-12T09:58:01Z"
  labels: {app.kubernetes.io/name: web, pod-template-hash: 7c9f8d6b5}
  ownerReferences:
    - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7c9f8d6b5, controller: true,
       blockOwnerDeletion: true, uid: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0}
  finalizers: [example.com/cleanup]
  managedFields:
    - manager: kube-controller-manager
      operation: Update
      apiVersion: v1
      time: "2026-01-12T09:58:01Z"
      fieldsType: FieldsV1
      fieldsV1: {"f:metadata": {"f:generateName": {}}}
    - manager: kubelet
      operation: Update
      apiVersion: v1
      time: "2026-01-12T09:58:09Z"
      fieldsType: FieldsV1
      fieldsV1: {"f:status": {"f:phase": {}}}
      subresource: status
spec:
  nodeName: node-1
  schedulerName: default-scheduler
  restartPolicy: Always
  dnsPolicy: ClusterFirst
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  enableServiceLinks: true
  os: {name: linux}
  hostname: web-0
  subdomain: web
  setHostnameAsFQDN: false
  shareProcessNamespace: false
  hostUsers: true
  hostNetwork: false
  runtimeClassName: procorch
  overhead: {cpu: 10m}
  schedulingGates: [{name: example.com/quota-check}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: gpu-template}]
  securityContext: {}
  tolerations:
    - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
       tolerationSeconds: 300}
  containers:
    - name: web
      image: registry.example.com/shop/web:1.4.2
      command: [python, -m, http.server, "8000"]
      ports: [{containerPort: 8000, protocol: TCP}]
      resources:
        requests: {cpu: 100m}
        claims: [{name: gpu, request: first}]
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: File
      imagePullPolicy: IfNotPresent
      volumeMounts:
        - {name: kube-api-access-abcde, mountPath: /var/run/secrets/kubernetes.io/serviceaccount,
           readOnly: true}
      stdin: false
      stdinOnce: false
      tty: false
  ephemeralContainers:
    - name: debugger-7x4q
      image: busybox:1.36
      command: [sh]
      stdin: true
      tty: true
      targetContainerName: web
  volumes:
    - name: kube-api-access-abcde
      projected:
        defaultMode: 420
        sources:
          - serviceAccountToken: {expirationSeconds: 3607, path: token}
          - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
          - downwardAPI:
              items:
                - {path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}
status:
  phase: Running
  qosClass: Burstable
  hostIP: 127.0.0.1
  hostIPs: [{ip: 127.0.0.1}]
  podIP: 127.1.0.7
  podIPs: [{ip: 127.1.0.7}]
  startTime: "2026-01-12T09:58:01Z"
  nominatedNodeName: ""
  conditions:
    - {type: PodReadyToStartContainers, status: "True", lastProbeTime: null,
       lastTransitionTime: "2026-01-12T09:58:03Z"}
    - {type: Initialized, status: "True", lastTransitionTime: "2026-01-12T09:58:01Z"}
    - {type: Ready, status: "True", lastTransitionTime: "2026-01-12T09:58:09Z"}
    - {type: ContainersReady, status: "True", lastTransitionTime: "2026-01-12T09:58:09Z"}
    - {type: PodScheduled, status: "True", lastTransitionTime: "2026-01-12T09:58:01Z"}
  containerStatuses:
    - name: web
      image: registry.example.com/shop/web:1.4.2
      imageID: ""
      containerID: procorch://4121
      ready: true
      started: true
      restartCount: 1
      state: {running: {startedAt: "2026-01-12T09:58:08Z"}}
      lastState:
        terminated: {exitCode: 137, signal: 9, reason: OOMKilled, message: killed,
                     startedAt: "2026-01-12T09:58:02Z", finishedAt: "2026-01-12T09:58:07Z",
                     containerID: procorch://4099}
      allocatedResources: {cpu: 100m}
      resources: {requests: {cpu: 100m}}
      volumeMounts:
        - {name: kube-api-access-abcde, readOnly: true, recursiveReadOnly: Disabled,
           mountPath: /var/run/secrets/kubernetes.io/serviceaccount}
      user: {linux: {uid: 1000, gid: 1000, supplementalGroups: [1000]}}
      allocatedResourcesStatus:
        - name: claim:gpu/first
          resources: [{resourceID: gpu-0, health: Healthy}]
  ephemeralContainerStatuses:
    - name: debugger-7x4q
      image: busybox:1.36
      imageID: ""
      ready: false
      restartCount: 0
      state: {waiting: {reason: ContainerCreating}}
  resourceClaimStatuses: [{name: gpu, resourceClaimName: web-7c9f8d6b5-x2kqp-gpu-abcde}]
"""

NODE = """
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {kubernetes.io/hostname: node-1, kubernetes.io/os: linux}
  annotations: {node.alpha.kubernetes.io/ttl: "0"}
spec:
  podCIDR: 127.1.0.0/16
  podCIDRs: [127.1.0.0/16]
  providerID: procorch://node-1
  unschedulable: false
  taints:
    - {key: node.kubernetes.io/unreachable, effect: NoExecute,
       timeAdded: "2026-01-12T10:03:00Z"}
status:
  capacity: {cpu: "8", memory: 32778468Ki, pods: "110", ephemeral-storage: 490617784Ki}
  allocatable: {cpu: 7800m, memory: 32676068Ki, pods: "110"}
  phase: Running
  conditions:
    - {type: Ready, status: "True", reason: KubeletReady, message: agent is posting ready status,
       lastHeartbeatTime: "2026-01-12T10:02:40Z", lastTransitionTime: "2026-01-12T09:00:00Z"}
    - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory,
       lastHeartbeatTime: "2026-01-12T10:02:40Z", lastTransitionTime: "2026-01-12T09:00:00Z"}
  addresses:
    - {type: InternalIP, address: 127.0.0.1}
    - {type: Hostname, address: node-1}
  daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
  nodeInfo:
    machineID: 1b2c3d4e5f
    systemUUID: 1B2C3D4E-5F60-7182-93A4-B5C6D7E8F901
    bootID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
    kernelVersion: 6.8.0-45-generic
    osImage: Ubuntu 24.04.1 LTS
    containerRuntimeVersion: procorch://0.1.0
    kubeletVersion: v1.32.0
    kubeProxyVersion: ""
    operatingSystem: linux
    architecture: amd64
  images:
    - {names: ["registry.example.com/shop/web@sha256:0123", "registry.example.com/shop/web:1.4.2"],
       sizeBytes: 104857600}
  volumesInUse: [kubernetes.io/csi/driver^vol-1]
  volumesAttached: [{name: kubernetes.io/csi/driver^vol-1, devicePath: ""}]
  runtimeHandlers:
    - {name: "", features: {recursiveReadOnlyMounts: true, userNamespaces: false}}
  features: {supplementalGroupsPolicy: true}
  config:
    active:
      configMap: {namespace: kube-system, name: node-config, uid: abc,
                  resourceVersion: "12", kubeletConfigKey: kubelet}
    error: ""
"""

MORE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {kubernetes.io/metadata.name: shop}}
spec: {finalizers: [kubernetes]}
status:
  phase: Terminating
  conditions:
    - {type: NamespaceContentRemaining, status: "True", reason: SomeResourcesRemain,
       message: "Some resources are remaining: pods. has 1 resource instances",
       lastTransitionTime: "2026-01-12T10:00:00Z"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
immutable: false
data: {settings.yaml: "debug: false\\n", LOG_LEVEL: info}
binaryData: {logo.png: iVBORw0KGgo=}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
type: Opaque
data: {password: czNjcjN0, multiline: "YWJj\\nZGVm"}
stringData: {username: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
automountServiceAccountToken: false
secrets: [{name: web-token-abcde}]
imagePullSecrets: [{name: registry-creds}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: web-data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local-path
  volumeMode: Filesystem
  resources: {requests: {storage: 5Gi}, limits: {storage: 10Gi}}
  selector: {matchLabels: {tier: fast}}
  dataSource: {kind: PersistentVolumeClaim, name: web-data-old}
  dataSourceRef: {kind: PersistentVolumeClaim, name: web-data-old, namespace: shop}
status:
  phase: Bound
  accessModes: [ReadWriteOnce]
  capacity: {storage: 5Gi}
  conditions: [{type: Resizing, status: "True", lastProbeTime: "2026-01-12T10:00:00Z"}]
  allocatedResources: {storage: 5Gi}
  allocatedResourceStatuses: {storage: ControllerResizeInProgress}
  modifyVolumeStatus: {targetVolumeAttributesClassName: gold, status: InProgress}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
  - addresses:
      - ip: 127.1.0.7
        nodeName: node-1
        hostname: web-0
        targetRef: {kind: Pod, name: web-7c9f8d6b5-x2kqp, namespace: shop,
                    uid: 8a6c3f2e-1d4b-4c8e-9f7a-2b3c4d5e6f70}
    notReadyAddresses: [{ip: 127.1.0.8}]
    ports: [{name: http, port: 8000, protocol: TCP, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: procorch}
addressType: IPv4
endpoints:
  - addresses: [127.1.0.7]
    conditions: {ready: true, serving: true, terminating: false}
    nodeName: node-1
    zone: local
    hostname: web-0
    hints: {forZones: [{name: local}]}
    deprecatedTopology: {kubernetes.io/hostname: node-1}
    targetRef: {kind: Pod, name: web-7c9f8d6b5-x2kqp, namespace: shop}
ports: [{name: http, port: 8000, protocol: TCP, appProtocol: http}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec, description: The cron spec}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string, pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'}
              replicas: {type: integer, minimum: 1, maximum: 10}
status:
  acceptedNames: {plural: crontabs, kind: CronTab}
  conditions:
  - {type: Established, status: "True", lastTransitionTime: "2026-01-12T09:00:00Z", reason: InitialNamesAccepted, message: the initial names have been accepted}
  storedVersions: [v1]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy, namespace: shop, labels: {app: legacy}}
spec:
  replicas: 2
  minReadySeconds: 5
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers:
      - {name: main, command: [sleep, "3600"]}
status:
  replicas: 2
  readyReplicas: 2
  availableReplicas: 2
  fullyLabeledReplicas: 2
  observedGeneration: 1
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-1}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  volumeMode: Filesystem
  hostPath: {path: /mnt/data, type: DirectoryOrCreate}
  claimRef: {namespace: shop, name: data}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [node-1]}
status: {phase: Bound}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 1, maxUnavailable: 1}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}
  ordinals: {start: 0}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, command: [postgres], volumeMounts: [{name: data, mountPath: /var/lib/db}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
status:
  replicas: 3
  readyReplicas: 3
  currentReplicas: 3
  updatedReplicas: 3
  availableReplicas: 3
  currentRevision: db-7d9c8f
  updateRevision: db-7d9c8f
  observedGeneration: 2
  collisionCount: 0
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: node-1, namespace: kube-node-lease}
spec:
  holderIdentity: node-1
  leaseDurationSeconds: 40
  acquireTime: "2026-01-12T09:00:00.000000Z"
  renewTime: "2026-01-12T10:02:40.123456Z"
  leaseTransitions: 0
---
apiVersion: v1
kind: Event
metadata: {name: web-7c9f8d6b5-x2kqp.17a2b3c4d5e6f708, namespace: shop}
involvedObject: {apiVersion: v1, kind: Pod, name: web-7c9f8d6b5-x2kqp, namespace: shop,
                 uid: 8a6c3f2e-1d4b-4c8e-9f7a-2b3c4d5e6f70, resourceVersion: "48200",
                 fieldPath: "spec.containers{web}"}
reason: BackOff
message: Back-off restarting failed container web
type: Warning
count: 5
firstTimestamp: "2026-01-12T09:58:07Z"
lastTimestamp: "2026-01-12T10:01:07Z"
eventTime: "2026-01-12T09:58:07.000001Z"
series: {count: 5, lastObservedTime: "2026-01-12T10:01:07.000000Z"}
source: {component: kubelet, host: node-1}
action: Restarting
related: {kind: Node, name: node-1}
reportingComponent: kubelet
reportingInstance: node-1
---
apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: default}
spec:
  parallelism: 2
  completions: 4
  completionMode: Indexed
  backoffLimitPerIndex: 1
  maxFailedIndexes: 2
  manualSelector: true
  selector: {matchLabels: {job: pi}}
  suspend: false
  managedBy: kubernetes.io/job-controller
  successPolicy: {rules: [{succeededIndexes: "0-2", succeededCount: 2}]}
  template:
    metadata: {labels: {job: pi}}
    spec:
      restartPolicy: Never
      containers: [{name: pi, command: [python3, -c, "print(355/113)"]}]
status:
  startTime: "2026-01-12T10:00:00Z"
  completionTime: "2026-01-12T10:00:30Z"
  active: 0
  succeeded: 4
  failed: 1
  ready: 0
  terminating: 0
  completedIndexes: 0-3
  failedIndexes: ""
  uncountedTerminatedPods: {succeeded: [uid-1], failed: []}
  conditions:
    - {type: SuccessCriteriaMet, status: "True", lastProbeTime: "2026-01-12T10:00:30Z",
       lastTransitionTime: "2026-01-12T10:00:30Z", reason: CompletionsReached,
       message: Reached expected number of succeeded pods}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-7c9f8d6b5
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d-1,
                     controller: true, blockOwnerDeletion: true}]
spec:
  replicas: 3
  minReadySeconds: 0
  selector: {matchLabels: {app: web, pod-template-hash: 7c9f8d6b5}}
  template:
    metadata: {labels: {app: web, pod-template-hash: 7c9f8d6b5}}
    spec: {containers: [{name: web, command: [sleep, infinity]}]}
status:
  replicas: 3
  fullyLabeledReplicas: 3
  readyReplicas: 2
  availableReplicas: 2
  observedGeneration: 1
  conditions: [{type: ReplicaFailure, status: "False", lastTransitionTime: "2026-01-12T10:00:00Z"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
  namespace: shop
  annotations: {deprecated.daemonset.template.generation: "2"}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      nodeSelector: {role: edge}
      containers: [{name: agent, command: [sleep, infinity]}]
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 25%}
  minReadySeconds: 5
  revisionHistoryLimit: 3
status:
  currentNumberScheduled: 3
  numberMisscheduled: 0
  desiredNumberScheduled: 3
  numberReady: 2
  observedGeneration: 2
  updatedNumberScheduled: 1
  numberAvailable: 2
  numberUnavailable: 1
  collisionCount: 1
  conditions: [{type: Example, status: "False", lastTransitionTime: "2026-01-12T10:00:00Z"}]
---
apiVersion: apps/v1
kind: ControllerRevision
metadata:
  name: node-agent-6c5899cb8b
  namespace: shop
  labels: {app: node-agent, controller-revision-hash: 6c5899cb8b}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: node-agent, uid: ds-1,
                     controller: true, blockOwnerDeletion: true}]
data: {spec: {template: {$patch: replace, metadata: {labels: {app: node-agent}},
       spec: {containers: [{name: agent, command: [sleep, infinity]}]}}}}
revision: 2
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, generation: 4}
spec:
  paused: true
  selector: {matchLabels: {app: web}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, command: [sleep, infinity]}]}
status:
  observedGeneration: 4
  replicas: 3
  updatedReplicas: 3
  readyReplicas: 3
  availableReplicas: 3
  unavailableReplicas: 0
  collisionCount: 1
  conditions:
    - {type: Progressing, status: "True", reason: NewReplicaSetAvailable,
       message: ReplicaSet "web-7c9f8d6b5" has successfully progressed.,
       lastUpdateTime: "2026-01-12T10:00:00Z", lastTransitionTime: "2026-01-12T09:00:00Z"}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: procorch
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec:
  controller: procorch.dev/ingress
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb,
               scope: Namespace, namespace: ingress}
---
apiVersion: autoscaling/v1
kind: Scale
metadata: {name: web, namespace: shop, resourceVersion: "4711"}
spec: {replicas: 5}
status: {replicas: 3, selector: app=web}
---
apiVersion: v1
kind: Binding
metadata: {name: web-7c9f8d6b5-x2kqp, namespace: shop}
target: {apiVersion: v1, kind: Node, name: node-1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop, generation: 2}
spec:
  maxUnavailable: 25%
  selector: {matchLabels: {app: web}}
  unhealthyPodEvictionPolicy: AlwaysAllow
status:
  observedGeneration: 2
  disruptionsAllowed: 1
  currentHealthy: 4
  desiredHealthy: 3
  expectedPods: 4
  disruptedPods: {web-7c9f8d6b5-x2kqp: "2026-12-07T05:30:00Z"}
  conditions:
  - {type: DisruptionAllowed, status: "True", reason: SufficientPods, message: "",
     observedGeneration: 2, lastTransitionTime: "2026-12-07T05:30:00Z"}
---
apiVersion: policy/v1
kind: Eviction
metadata: {name: web-7c9f8d6b5-x2kqp, namespace: shop}
deleteOptions:
  gracePeriodSeconds: 10
  preconditions: {uid: 8a6c3f2e-1d4b-4c8e-9f7a-2b3c4d5e6f70, resourceVersion: "48213"}
---
apiVersion: authentication.k8s.io/v1
kind: TokenRequest
metadata: {name: default, namespace: shop}
spec:
  audiences: [https://kubernetes.default.svc.cluster.local]
  expirationSeconds: 3607
  boundObjectRef: {apiVersion: v1, kind: Pod, name: web-7c9f8d6b5-x2kqp, uid: 8a6c3f2e-1d4b-4c8e-9f7a-2b3c4d5e6f70}
status: {token: eyJhbGciOiJFUzI1NiJ9.e30.c2ln, expirationTimestamp: "2026-12-07T06:30:00Z"}
---
apiVersion: v1
kind: DeleteOptions
propagationPolicy: Foreground
gracePeriodSeconds: 0
orphanDependents: false
dryRun: [All]
preconditions: {resourceVersion: "48213"}
"""


def _docs(*texts: str) -> list[dict[str, Any]]:
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


MANIFESTS = _docs(DEPLOYMENT, CRONJOB, INGRESS, SERVICE, RBAC, HPA, POD_WITH_STATUS, NODE, MORE)


def _id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '')}"


def _decode(obj: dict[str, Any]) -> K8sModel:
    model = model_for(obj["apiVersion"], obj["kind"])
    assert model is not None, (obj["apiVersion"], obj["kind"])
    return model.model_validate(obj)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("manifest", MANIFESTS, ids=_id)
def test_real_manifest_decodes_and_dumps_back_unchanged(manifest: dict[str, Any]) -> None:
    decoded = _decode(manifest)
    # Nothing renamed, dropped or coerced: the dump is the input (minus explicit nulls).
    assert decoded.model_dump(exclude_none=True, by_alias=True) == _drop_nulls(manifest)


def test_every_model_has_a_real_manifest_in_these_tests() -> None:
    covered = {(doc["apiVersion"], doc["kind"]) for doc in MANIFESTS}
    assert {d.gvk for d in BUILTIN} | set(BODY_MODELS) <= covered


STREAMED = ("log", "exec", "attach", "portforward")


def test_every_served_resource_and_subresource_body_has_a_model() -> None:
    for rt in resources.RESOURCES:
        assert model_for(rt.api_version, rt.kind) is not None, rt.kind
        for sub in rt.subresources:
            # log, exec, attach and portforward take their options in the query, never a body.
            if sub.kind and sub.kind != rt.kind and sub.name not in STREAMED:
                api_version = f"{sub.group}/{sub.version or 'v1'}" if sub.group else "v1"
                assert model_for(api_version, sub.kind) is not None, (rt.kind, sub.name)


def test_model_for_is_none_for_kinds_not_served() -> None:
    assert model_for("apps/v1", "ControllerRevisionList") is None
    assert model_for("v1", "Deployment") is None  # right kind, wrong group
    assert model_for("autoscaling/v1", "HorizontalPodAutoscaler") is None
    assert schema_for("storage.k8s.io/v1", "StorageClass") is None


def test_delete_options_decode_under_any_group_version() -> None:
    for api_version in ("v1", "meta.k8s.io/v1", "apps/v1", "batch/v1"):
        assert model_for(api_version, "DeleteOptions") is DeleteOptions


def test_explicit_null_is_accepted_for_optional_fields() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "creationTimestamp": None, "labels": None},
        "spec": {"containers": [{"name": "c", "command": ["true"], "resources": None}]},
        "status": None,
    }
    _decode(pod)


def test_ephemeral_containers_alone_have_a_target_container() -> None:
    assert "targetContainerName" in EphemeralContainer.model_fields
    assert "targetContainerName" not in Container.model_fields
    assert set(Container.model_fields) < set(EphemeralContainer.model_fields)


# --- shape errors and their paths -----------------------------------------------------------


def _errors(obj: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as info:
        _decode(obj)
    return [(tuple(e["loc"]), e["type"]) for e in info.value.errors()]


def _deployment() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(DEPLOYMENT)
    return manifest


def test_unknown_field_deep_in_a_deployment_is_reported_at_its_path() -> None:
    obj = _deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["portt"] = 80
    obj["spec"]["template"]["spec"]["containerz"] = []
    assert sorted(_errors(obj), key=str) == sorted(
        [
            (("spec", "template", "spec", "containerz"), "extra_forbidden"),
            (
                ("spec", "template", "spec", "containers", 0, "livenessProbe", "httpGet", "portt"),
                "extra_forbidden",
            ),
        ],
        key=str,
    )


def test_unknown_field_in_a_volume_source_is_reported() -> None:
    obj = _deployment()
    obj["spec"]["template"]["spec"]["volumes"][1]["emptyDir"]["sizelimit"] = "1Gi"
    assert _errors(obj) == [
        (("spec", "template", "spec", "volumes", 1, "emptyDir", "sizelimit"), "extra_forbidden")
    ]


def test_unknown_top_level_field_is_reported() -> None:
    assert _errors({"apiVersion": "v1", "kind": "ConfigMap", "date": {}}) == [
        (("date",), "extra_forbidden")
    ]


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("spec", "replicas"), "3", "int_type"),
        (("spec", "replicas"), 2.5, "int_type"),
        (("spec", "replicas"), True, "int_type"),
        (("spec", "replicas"), 2**31, "less_than_equal"),
        (("spec", "paused"), "true", "bool_type"),
        (("spec", "strategy", "rollingUpdate", "maxSurge"), 1.5, "int_or_string_type"),
        (("spec", "strategy", "rollingUpdate", "maxSurge"), False, "int_or_string_type"),
        (("spec", "selector", "matchLabels"), ["app"], "dict_type"),
        (("spec", "template", "spec", "containers"), {"name": "web"}, "list_type"),
        (("spec", "template", "spec", "containers", 0, "command"), "gunicorn", "list_type"),
        (
            ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"),
            "8000",
            "int_type",
        ),
        (
            ("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"),
            "lots",
            "quantity_format",
        ),
        (
            ("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"),
            [1],
            "quantity_type",
        ),
        (("spec", "template", "spec", "terminationGracePeriodSeconds"), 2**63, "less_than_equal"),
        (("spec", "template", "spec", "tolerations", 0), "dedicated", "model_type"),
        (("spec", "template", "metadata", "creationTimestamp"), "yesterday", "time_format"),
        (("metadata", "labels", "app.kubernetes.io/name"), 7, "string_type"),
    ],
)
def test_wrong_type_is_reported_at_its_path_without_union_noise(
    path: tuple[int | str, ...], value: object, error: str
) -> None:
    obj = _deployment()
    target: Any = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert _errors(obj) == [(path, error)]


def test_every_problem_is_reported_at_once() -> None:
    obj = _deployment()
    obj["spec"]["replicas"] = "three"
    obj["spec"]["template"]["spec"]["containers"][1]["image"] = 2
    obj["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"] = "0644"
    assert {loc for loc, _ in _errors(obj)} == {
        ("spec", "replicas"),
        ("spec", "template", "spec", "containers", 1, "image"),
        ("spec", "template", "spec", "volumes", 0, "configMap", "defaultMode"),
    }


def test_service_target_port_takes_a_name_or_a_number() -> None:
    service = _decode(yaml.safe_load(SERVICE))
    ports = service.model_dump()["spec"]["ports"]
    assert [p["targetPort"] for p in ports] == ["http", 9100]


def test_secret_data_must_be_base64_as_go_decodes_bytes() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"ok": "czNjcjN0", "bad": "s3cr3t!"}}
    assert _errors(secret) == [(("data", "bad"), "base64_format")]
    unpadded = {"apiVersion": "v1", "kind": "ConfigMap", "binaryData": {"b": "YWJj ZA"}}
    assert _errors(unpadded) == [(("binaryData", "b"), "base64_format")]


def test_quantities_accept_numbers_and_every_suffix_form() -> None:
    limits = {"cpu": 0.5, "memory": "1e9", "hugepages-2Mi": "64Mi", "example.com/gpu": 2}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]},
    }
    _decode(pod)


def test_micro_time_accepts_timestamps_with_and_without_fraction() -> None:
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "spec": {"renewTime": "2026-01-12T10:02:40Z", "acquireTime": "2026-01-12T10:02:40.5+02:00"},
    }
    _decode(lease)
    lease["spec"]["renewTime"] = "2026-01-12 10:02:40"
    assert _errors(lease) == [(("spec", "renewTime"), "time_format")]


# --- schema navigation: list and patch semantics --------------------------------------------


def _pod_spec_of(api_version: str, kind: str, *path: str) -> Any:
    node = schema_for(api_version, kind)
    assert node is not None
    for name in path:
        node = node.field(name)
    return node


def test_deployment_containers_and_their_ports_are_list_maps() -> None:
    pod_spec = _pod_spec_of("apps/v1", "Deployment", "spec", "template", "spec")
    containers = pod_spec.field("containers")
    assert (containers.list_type, containers.list_keys, containers.merge_key) == (
        "map",
        ("name",),
        "name",
    )
    ports = containers.item().field("ports")
    assert (ports.list_type, ports.list_keys, ports.merge_key) == (
        "map",
        ("containerPort", "protocol"),
        "containerPort",
    )
    assert ports.item().field("containerPort").kind == "scalar"
    container = containers.item()
    assert container.field("env").list_keys == ("name",)
    # Kubernetes 1.32 marks volumeMounts +listType=map too, not only +patchMergeKey.
    mounts = container.field("volumeMounts")
    assert (mounts.list_type, mounts.list_keys, mounts.merge_key) == (
        "map",
        ("mountPath",),
        "mountPath",
    )
    assert container.field("command").list_type == "atomic"
    assert container.field("command").merge_key is None
    assert container.field("envFrom").list_type == "atomic"
    assert container.field("resources").field("claims").list_keys == ("name",)
    for name in ("initContainers", "ephemeralContainers"):
        assert pod_spec.field(name).list_keys == ("name",)
        assert pod_spec.field(name).item().field("ports").merge_key == "containerPort"


def test_cronjob_pod_volumes_merge_by_name_and_retain_keys() -> None:
    volumes = _pod_spec_of(
        "batch/v1", "CronJob", "spec", "jobTemplate", "spec", "template", "spec", "volumes"
    )
    assert volumes.is_list_map
    assert (volumes.list_keys, volumes.merge_key, volumes.retain_keys) == (("name",), "name", True)
    config_map = volumes.item().field("configMap")
    assert config_map.kind == "object"
    assert config_map.field("items").list_type == "atomic"


def test_pod_spec_lists_follow_kubernetes_markers() -> None:
    spec = _pod_spec_of("v1", "Pod", "spec")
    assert spec.field("tolerations").list_type == "atomic"
    assert spec.field("tolerations").merge_key is None
    assert spec.field("imagePullSecrets").merge_key == "name"
    assert spec.field("imagePullSecrets").item().atomic
    assert spec.field("hostAliases").list_keys == ("ip",)
    tsc = spec.field("topologySpreadConstraints")
    assert (tsc.list_keys, tsc.merge_key) == (("topologyKey", "whenUnsatisfiable"), "topologyKey")
    assert spec.field("schedulingGates").list_keys == ("name",)
    assert spec.field("resourceClaims").retain_keys
    assert spec.field("nodeSelector").kind == "map"
    assert spec.field("nodeSelector").atomic
    affinity = spec.field("affinity").field("nodeAffinity")
    assert affinity.field("requiredDuringSchedulingIgnoredDuringExecution").atomic
    assert spec.field("overhead").kind == "map"


def test_pod_status_lists_follow_kubernetes_markers() -> None:
    status = _pod_spec_of("v1", "Pod", "status")
    assert status.field("conditions").list_keys == ("type",)
    assert status.field("podIPs").list_keys == ("ip",)
    host_ips = status.field("hostIPs")  # merged by ip in SMP, atomic in SSA
    assert (host_ips.list_type, host_ips.merge_key) == ("atomic", "ip")
    assert status.field("containerStatuses").list_type == "atomic"
    assert status.field("containerStatuses").merge_key is None


def test_metadata_lists_and_selectors() -> None:
    meta = _pod_spec_of("apps/v1", "Deployment", "metadata")
    assert meta.field("finalizers").list_type == "set"
    assert meta.field("finalizers").set_merge
    owners = meta.field("ownerReferences")
    assert (owners.list_keys, owners.merge_key) == (("uid",), "uid")
    assert owners.item().atomic
    assert meta.field("labels").kind == "map"
    spec = _pod_spec_of("apps/v1", "Deployment", "spec")
    assert spec.field("selector").atomic
    assert spec.field("strategy").retain_keys
    assert not spec.field("template").atomic


def test_other_kinds_list_markers() -> None:
    ports = _pod_spec_of("v1", "Service", "spec", "ports")
    assert (ports.list_keys, ports.merge_key) == (("port", "protocol"), "port")
    assert _pod_spec_of("v1", "Service", "spec", "selector").atomic
    assert _pod_spec_of("v1", "Node", "spec", "podCIDRs").list_type == "set"
    assert _pod_spec_of("v1", "Node", "status", "addresses").list_keys == ("type",)
    assert _pod_spec_of("v1", "ServiceAccount", "secrets").list_keys == ("name",)
    job_conditions = _pod_spec_of("batch/v1", "Job", "status", "conditions")
    assert (job_conditions.list_type, job_conditions.merge_key) == ("atomic", "type")
    slice_addresses = _pod_spec_of("discovery.k8s.io/v1", "EndpointSlice", "endpoints")
    addresses = slice_addresses.item().field("addresses")
    assert (addresses.list_type, addresses.set_merge) == ("set", False)
    binding = _pod_spec_of("rbac.authorization.k8s.io/v1", "RoleBinding")
    assert binding.field("roleRef").atomic
    assert binding.field("subjects").item().atomic
    hpa = _pod_spec_of("autoscaling/v2", "HorizontalPodAutoscaler", "status", "conditions")
    assert hpa.list_keys == ("type",)
    assert _pod_spec_of("v1", "Endpoints", "subsets").item().field("addresses").item().atomic


# --- completeness against the Kubernetes Python client's generated models -------------------

# Fields the client (generated from a newer Kubernetes) knows but Kubernetes 1.32 does not
# serve; a real 1.32 API server refuses them under strict field validation too.
NEWER_THAN_1_32 = {
    "V1TokenRequestSpec": {"attestations"},
    "V1CustomResourceDefinitionStatus": {"observedGeneration"},
    "V1CustomResourceDefinitionCondition": {"observedGeneration"},
    "V1PodSpec": {"hostnameOverride", "schedulingGroup", "evictionResponders"},
    "V1PodStatus": {
        "observedGeneration",
        "allocatedResources",
        "resources",
        "extendedResourceClaimStatus",
        "nodeAllocatableResourceClaimStatuses",
        "volumeHealth",
    },
    "V1PodCondition": {"observedGeneration"},
    "V1Container": {"restartPolicyRules"},
    "V1EphemeralContainer": {"restartPolicyRules"},
    "V1ContainerStatus": {"stopSignal"},
    "V1Lifecycle": {"stopSignal"},
    "V1EnvVarSource": {"fileKeyRef"},
    "V1VolumeMount": {"bindMountOptions"},
    "V1VolumeMountStatus": {"volumeStatus"},
    "V1ResourceHealth": {"message"},
    "V1HTTPGetAction": {"protocol"},
    "V1GRPCAction": {"mode"},
    "V1EmptyDirVolumeSource": {"mode"},
    "V1ConfigMapVolumeSource": {"defaultUser"},
    "V1SecretVolumeSource": {"defaultUser"},
    "V1DownwardAPIVolumeSource": {"defaultUser"},
    "V1ProjectedVolumeSource": {"defaultUser"},
    "V1KeyToPath": {"user"},
    "V1DownwardAPIVolumeFile": {"user"},
    "V1ServiceAccountTokenProjection": {"user"},
    "V1ClusterTrustBundleProjection": {"user"},
    "V1VolumeProjection": {"podCertificate"},
    "V1NodeSpec": {"podPreemptionPolicy"},
    "V1NodeStatus": {"declaredFeatures"},
    "V1NodeSystemInfo": {"swap", "runningInUserNamespace"},
    "V1PersistentVolumeClaimStatus": {"healthStatus"},
    "V1EndpointHints": {"forNodes"},
    "V1DeploymentStatus": {"terminatingReplicas"},
    "V1ReplicaSetStatus": {"terminatingReplicas"},
    "V1JobSpec": {"scheduling"},
    "V2HPAScalingRules": {"tolerance"},
    "V2HorizontalPodAutoscalerCondition": {"observedGeneration"},
}

CLIENT_ROOTS = {
    "CustomResourceDefinition": "V1CustomResourceDefinition",
    "ReplicationController": "V1ReplicationController",
    "PersistentVolume": "V1PersistentVolume",
    "StatefulSet": "V1StatefulSet",
    "Namespace": "V1Namespace",
    "Pod": "V1Pod",
    "Node": "V1Node",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "Service": "V1Service",
    "Endpoints": "V1Endpoints",
    "Event": "CoreV1Event",
    "ServiceAccount": "V1ServiceAccount",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Binding": "V1Binding",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "DaemonSet": "V1DaemonSet",
    "ControllerRevision": "V1ControllerRevision",
    "Job": "V1Job",
    "CronJob": "V1CronJob",
    "Ingress": "V1Ingress",
    "IngressClass": "V1IngressClass",
    "EndpointSlice": "V1EndpointSlice",
    "Lease": "V1Lease",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "Scale": "V1Scale",
    "Eviction": "V1Eviction",
    "TokenRequest": "AuthenticationV1TokenRequest",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
}


def _model_under(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    tp: Any = model.model_fields[name].annotation
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (list, dict):
            tp = typing.get_args(tp)[-1]
        elif typing.get_args(tp) and type(None) in typing.get_args(tp):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            break
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def test_models_cover_every_field_the_kubernetes_client_knows() -> None:
    client = pytest.importorskip("kubernetes.client")
    missing: list[str] = []
    seen: set[tuple[type[BaseModel], str]] = set()

    def walk(model: type[BaseModel], client_name: str, path: str) -> None:
        if (model, client_name) in seen:
            return
        seen.add((model, client_name))
        client_cls = getattr(client, client_name)
        by_json = {(f.alias or name): name for name, f in model.model_fields.items()}
        for attr, json_name in client_cls.attribute_map.items():
            if json_name not in by_json:
                if json_name not in NEWER_THAN_1_32.get(client_name, set()):
                    missing.append(f"{path}.{json_name} ({client_name})")
                continue
            inner = client_cls.openapi_types[attr]  # "V1PodSpec", "List[V1Container]", ...
            while inner.lower().startswith(("list[", "dict[")):
                inner = inner.split("[", 1)[1].rsplit("]", 1)[0].removeprefix("str, ")
            sub = _model_under(model, by_json[json_name])
            if sub is not None and hasattr(client, inner):
                walk(sub, inner, f"{path}.{json_name}")

    models = {d.gvk: d.model for d in BUILTIN if d.model is not None} | BODY_MODELS
    for (_api_version, kind), model in models.items():
        walk(model, CLIENT_ROOTS[kind], kind)
    walk(DeleteOptions, "V1DeleteOptions", "DeleteOptions")
    assert len(seen) > 200  # the walk really went deep
    assert missing == [], "fields missing (or newer than 1.32: list them in NEWER_THAN_1_32)"
