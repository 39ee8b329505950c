"""Field tables of the configuration APIs a kubeadm config file may hold, per Kubernetes minor (1.30-1.37).

Each table maps a type name to {JSON field name: type}; the type language is small:
``string``, ``bool``, ``int32``, ``int64``, ``uint32``, ``float``, ``duration`` (a Go duration string, as
metav1.Duration decodes it), ``duration|int`` (component-base's TimeOrMetaDuration: a duration string or
nanoseconds), ``time`` (RFC 3339), ``quantity`` (resource.Quantity: string or number), ``token`` (the
bootstraptoken/v1 BootstrapTokenString: a string checked while decoding), ``[]T``, ``map[string]T`` and
struct names. Pointers are flattened (Go's decoder treats ``null`` as "leave the zero value" for any field).
Embedded structs (``json:",inline"``) are expanded into the embedding type, as the decoder sees them;
``apiVersion``/``kind`` (metav1.TypeMeta) are added to every top-level kind by `kind_fields`.

Sources (transcribed facts only; the code that uses them is this project's):

- kubeadm.k8s.io/v1beta3: cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go, frozen since 1.27; checked against
  the copy in kubernetes-sigs/cluster-api bootstrap/kubeadm/pkg/types/upstreamv1beta3/types.go at
  ae7ff047db499ac3858ade268ba38db8c9f128bb (its own header: "a mirror of kubeadm API v1beta3").
- kubeadm.k8s.io/v1beta4: cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go read in the kubernetes/kubernetes
  source index at 1329935739c3aa007d23cb9a4dadfee9d59ff79b (1.31 development state) plus the fields that
  validation.go at 00d24de699fe4409b5829a5e51b73c1fc7bcba12 reads (UpgradeConfiguration apply/node
  imagePullPolicy + imagePullSerial) and the json tag of UpgradeApplyConfiguration.skipPhases as released;
  Init/Cluster/Join cross-checked with cluster-api upstreamv1beta4/types.go at ae7ff047. The index has no
  file version at the v1.3x.0 tags, so the v1beta4 table is the 1.31 shape applied to 1.31-1.37 (the
  release notes read record no field change after 1.31; the ECDSA-P384 *value* of encryptionAlgorithm came
  in 1.34, kubernetes/kubernetes#131677, and is handled in the contract's validation).
- kubelet.config.k8s.io/v1beta1: kubernetes/kubelet config/v1beta1/types.go at the tags v0.30.0
  (1a918424da87517baea1ed85fd240b03a2eabd51) ... v0.36.0 (eb8f71c979ae0c22dc2f15f76c6aae7dccd22a23) and
  master 63b3249724f7d89a8aa48f9acb3811f193c9aa68 (Kubernetes-commit 45b76a34, 1.37 development); the
  per-minor additions are in KUBELET_SINCE.
- kubeproxy.config.k8s.io/v1alpha1: kubernetes/kube-proxy config/v1alpha1/types.go at v0.30.0
  (4d97d72f5a009c816f1662d7cd2bc42ae4604941) ... master d37b2e75a8dce477550045acb61b3e1074813321.
- component-base logs/api/v1, tracing/api/v1, config/v1alpha1 types.go (kubernetes/component-base v0.30.0
  98e79b8b ... master 349fbe06: unchanged over 1.30-1.37); core/v1 Taint and EnvVar from kubernetes/api
  core/v1/types.go (v0.30.0 fb932d27; EnvVarSource.fileKeyRef appears at v0.34.0 ae6c3b91).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


def _f(**fields: str) -> dict[str, str]:
    return fields


# --- shared: core/v1, bootstraptoken/v1, component-base ---------------------------------------------------------

CORE: dict[str, dict[str, str]] = {
    "Taint": _f(key="string", value="string", effect="string", timeAdded="time"),
    "EnvVar": _f(name="string", value="string", valueFrom="EnvVarSource"),
    "EnvVarSource": _f(fieldRef="ObjectFieldSelector", resourceFieldRef="ResourceFieldSelector",
                       configMapKeyRef="ConfigMapKeySelector", secretKeyRef="SecretKeySelector",
                       fileKeyRef="FileKeySelector"),
    "ObjectFieldSelector": _f(apiVersion="string", fieldPath="string"),
    "ResourceFieldSelector": _f(containerName="string", resource="string", divisor="quantity"),
    "ConfigMapKeySelector": _f(name="string", key="string", optional="bool"),
    "SecretKeySelector": _f(name="string", key="string", optional="bool"),
    "FileKeySelector": _f(volumeName="string", path="string", key="string", optional="bool"),
    # cmd/kubeadm/app/apis/bootstraptoken/v1/types.go
    "BootstrapToken": _f(token="token", description="string", ttl="duration", expires="time", usages="[]string",
                         groups="[]string"),
    # component-base logs/api/v1 (TextOptions/JSONOptions inline OutputRoutingOptions)
    "LoggingConfiguration": _f(format="string", flushFrequency="duration|int", verbosity="uint32",
                               vmodule="[]VModuleItem", options="FormatOptions"),
    "VModuleItem": _f(filePattern="string", verbosity="uint32"),
    "FormatOptions": _f(text="OutputRoutingOptions", json="OutputRoutingOptions"),
    "OutputRoutingOptions": _f(splitStream="bool", infoBufferSize="quantity"),
    # component-base tracing/api/v1, config/v1alpha1
    "TracingConfiguration": _f(endpoint="string", samplingRatePerMillion="int32"),
    "ClientConnectionConfiguration": _f(kubeconfig="string", acceptContentTypes="string", contentType="string",
                                        qps="float", burst="int32"),
}
#: (type, field) -> first minor that has it (kubernetes/api v0.34.0 added EnvVarSource.fileKeyRef).
CORE_SINCE: dict[tuple[str, str], int] = {("EnvVarSource", "fileKeyRef"): 34}

# --- kubeadm.k8s.io/v1beta3 -------------------------------------------------------------------------------------

_V1BETA3_COMPONENT = _f(extraArgs="map[string]string", extraVolumes="[]HostPathMount")
KUBEADM_V1BETA3: dict[str, dict[str, str]] = {
    "InitConfiguration": _f(bootstrapTokens="[]BootstrapToken", nodeRegistration="NodeRegistrationOptions",
                            localAPIEndpoint="APIEndpoint", certificateKey="string", skipPhases="[]string",
                            patches="Patches"),
    "ClusterConfiguration": _f(etcd="Etcd", networking="Networking", kubernetesVersion="string",
                               controlPlaneEndpoint="string", apiServer="APIServer",
                               controllerManager="ControlPlaneComponent", scheduler="ControlPlaneComponent",
                               dns="DNS", certificatesDir="string", imageRepository="string",
                               featureGates="map[string]bool", clusterName="string"),
    "ControlPlaneComponent": dict(_V1BETA3_COMPONENT),
    "APIServer": {**_V1BETA3_COMPONENT, "certSANs": "[]string", "timeoutForControlPlane": "duration"},
    "DNS": _f(imageRepository="string", imageTag="string"),
    "APIEndpoint": _f(advertiseAddress="string", bindPort="int32"),
    "NodeRegistrationOptions": _f(name="string", criSocket="string", taints="[]Taint",
                                  kubeletExtraArgs="map[string]string", ignorePreflightErrors="[]string",
                                  imagePullPolicy="string"),
    "Networking": _f(serviceSubnet="string", podSubnet="string", dnsDomain="string"),
    "Etcd": _f(local="LocalEtcd", external="ExternalEtcd"),
    "LocalEtcd": _f(imageRepository="string", imageTag="string", dataDir="string", extraArgs="map[string]string",
                    serverCertSANs="[]string", peerCertSANs="[]string"),
    "ExternalEtcd": _f(endpoints="[]string", caFile="string", certFile="string", keyFile="string"),
    "JoinConfiguration": _f(nodeRegistration="NodeRegistrationOptions", caCertPath="string", discovery="Discovery",
                            controlPlane="JoinControlPlane", skipPhases="[]string", patches="Patches"),
    "JoinControlPlane": _f(localAPIEndpoint="APIEndpoint", certificateKey="string"),
    "Discovery": _f(bootstrapToken="BootstrapTokenDiscovery", file="FileDiscovery", tlsBootstrapToken="string",
                    timeout="duration"),
    "BootstrapTokenDiscovery": _f(token="string", apiServerEndpoint="string", caCertHashes="[]string",
                                  unsafeSkipCAVerification="bool"),
    "FileDiscovery": _f(kubeConfigPath="string"),
    "HostPathMount": _f(name="string", hostPath="string", mountPath="string", readOnly="bool", pathType="string"),
    "Patches": _f(directory="string"),
}

# --- kubeadm.k8s.io/v1beta4 (1.31+) -----------------------------------------------------------------------------

_V1BETA4_COMPONENT = _f(extraArgs="[]Arg", extraVolumes="[]HostPathMount", extraEnvs="[]EnvVar")
KUBEADM_V1BETA4: dict[str, dict[str, str]] = {
    "InitConfiguration": _f(bootstrapTokens="[]BootstrapToken", dryRun="bool",
                            nodeRegistration="NodeRegistrationOptions", localAPIEndpoint="APIEndpoint",
                            certificateKey="string", skipPhases="[]string", patches="Patches",
                            timeouts="Timeouts"),
    "ClusterConfiguration": _f(etcd="Etcd", networking="Networking", kubernetesVersion="string",
                               controlPlaneEndpoint="string", apiServer="APIServer",
                               controllerManager="ControlPlaneComponent", scheduler="ControlPlaneComponent",
                               dns="DNS", proxy="Proxy", certificatesDir="string", imageRepository="string",
                               featureGates="map[string]bool", clusterName="string", encryptionAlgorithm="string",
                               certificateValidityPeriod="duration", caCertificateValidityPeriod="duration"),
    "ControlPlaneComponent": dict(_V1BETA4_COMPONENT),
    "APIServer": {**_V1BETA4_COMPONENT, "certSANs": "[]string"},
    "DNS": _f(imageRepository="string", imageTag="string", disabled="bool"),
    "Proxy": _f(disabled="bool"),
    "APIEndpoint": _f(advertiseAddress="string", bindPort="int32"),
    "NodeRegistrationOptions": _f(name="string", criSocket="string", taints="[]Taint", kubeletExtraArgs="[]Arg",
                                  ignorePreflightErrors="[]string", imagePullPolicy="string",
                                  imagePullSerial="bool"),
    "Networking": _f(serviceSubnet="string", podSubnet="string", dnsDomain="string"),
    "Etcd": _f(local="LocalEtcd", external="ExternalEtcd"),
    "LocalEtcd": _f(imageRepository="string", imageTag="string", dataDir="string", extraArgs="[]Arg",
                    extraEnvs="[]EnvVar", serverCertSANs="[]string", peerCertSANs="[]string"),
    "ExternalEtcd": _f(endpoints="[]string", caFile="string", certFile="string", keyFile="string"),
    "JoinConfiguration": _f(dryRun="bool", nodeRegistration="NodeRegistrationOptions", caCertPath="string",
                            discovery="Discovery", controlPlane="JoinControlPlane", skipPhases="[]string",
                            patches="Patches", timeouts="Timeouts"),
    "JoinControlPlane": _f(localAPIEndpoint="APIEndpoint", certificateKey="string"),
    "Discovery": _f(bootstrapToken="BootstrapTokenDiscovery", file="FileDiscovery", tlsBootstrapToken="string"),
    "BootstrapTokenDiscovery": _f(token="string", apiServerEndpoint="string", caCertHashes="[]string",
                                  unsafeSkipCAVerification="bool"),
    "FileDiscovery": _f(kubeConfigPath="string"),
    "HostPathMount": _f(name="string", hostPath="string", mountPath="string", readOnly="bool", pathType="string"),
    "Patches": _f(directory="string"),
    "ResetConfiguration": _f(cleanupTmpDir="bool", certificatesDir="string", criSocket="string", dryRun="bool",
                             force="bool", ignorePreflightErrors="[]string", skipPhases="[]string",
                             unmountFlags="[]string", timeouts="Timeouts"),
    "Arg": _f(name="string", value="string"),
    "Timeouts": _f(controlPlaneComponentHealthCheck="duration", kubeletHealthCheck="duration",
                   kubernetesAPICall="duration", etcdAPICall="duration", tlsBootstrap="duration",
                   discovery="duration", upgradeManifests="duration"),
    "UpgradeConfiguration": _f(apply="UpgradeApplyConfiguration", diff="UpgradeDiffConfiguration",
                               node="UpgradeNodeConfiguration", plan="UpgradePlanConfiguration",
                               timeouts="Timeouts"),
    "UpgradeApplyConfiguration": _f(kubernetesVersion="string", allowExperimentalUpgrades="bool",
                                    allowRCUpgrades="bool", certificateRenewal="bool", dryRun="bool",
                                    etcdUpgrade="bool", forceUpgrade="bool", ignorePreflightErrors="[]string",
                                    patches="Patches", printConfig="bool", skipPhases="[]string",
                                    imagePullPolicy="string", imagePullSerial="bool"),
    "UpgradeDiffConfiguration": _f(kubernetesVersion="string", contextLines="int64"),
    "UpgradeNodeConfiguration": _f(certificateRenewal="bool", dryRun="bool", etcdUpgrade="bool",
                                   ignorePreflightErrors="[]string", skipPhases="[]string", patches="Patches",
                                   imagePullPolicy="string", imagePullSerial="bool"),
    "UpgradePlanConfiguration": _f(kubernetesVersion="string", allowExperimentalUpgrades="bool",
                                   allowRCUpgrades="bool", dryRun="bool", ignorePreflightErrors="[]string",
                                   printConfig="bool"),
}

# --- kubelet.config.k8s.io/v1beta1 (kubernetes/kubelet master; KUBELET_SINCE marks later additions) ------------

KUBELET_V1BETA1: dict[str, dict[str, str]] = {
    "KubeletConfiguration": _f(
        enableServer="bool", staticPodPath="string", podLogsDir="string", syncFrequency="duration",
        fileCheckFrequency="duration", httpCheckFrequency="duration", staticPodURL="string",
        staticPodURLHeader="map[string][]string", address="string", port="int32", readOnlyPort="int32",
        tlsCertFile="string", tlsPrivateKeyFile="string", tlsCipherSuites="[]string",
        tlsCurvePreferences="[]int32", tlsMinVersion="string", rotateCertificates="bool",
        serverTLSBootstrap="bool", authentication="KubeletAuthentication", authorization="KubeletAuthorization",
        registryPullQPS="int32", registryBurst="int32", imagePullCredentialsVerificationPolicy="string",
        preloadedImagesVerificationAllowlist="[]string", eventRecordQPS="int32", eventBurst="int32",
        enableDebuggingHandlers="bool", enableContentionProfiling="bool", healthzPort="int32",
        healthzBindAddress="string", oomScoreAdj="int32", clusterDomain="string", clusterDNS="[]string",
        streamingConnectionIdleTimeout="duration", nodeStatusUpdateFrequency="duration",
        nodeStatusReportFrequency="duration", nodeLeaseDurationSeconds="int32", imageMinimumGCAge="duration",
        imageMaximumGCAge="duration", imageGCHighThresholdPercent="int32", imageGCLowThresholdPercent="int32",
        volumeStatsAggPeriod="duration", kubeletCgroups="string", systemCgroups="string", cgroupRoot="string",
        cgroupsPerQOS="bool", cgroupDriver="string", cpuManagerPolicy="string", singleProcessOOMKill="bool",
        cpuManagerPolicyOptions="map[string]string", cpuManagerReconcilePeriod="duration",
        memoryManagerPolicy="string", topologyManagerPolicy="string", topologyManagerScope="string",
        topologyManagerPolicyOptions="map[string]string", qosReserved="map[string]string",
        runtimeRequestTimeout="duration", hairpinMode="string", maxPods="int32", podCIDR="string",
        podPidsLimit="int64", resolvConf="string", runOnce="bool", cpuCFSQuota="bool",
        cpuCFSQuotaPeriod="duration", nodeStatusMaxImages="int32", maxOpenFiles="int64", contentType="string",
        kubeAPIQPS="int32", kubeAPIBurst="int32", serializeImagePulls="bool", maxParallelImagePulls="int32",
        evictionHard="map[string]string", evictionSoft="map[string]string",
        evictionSoftGracePeriod="map[string]string", evictionPressureTransitionPeriod="duration",
        evictionMaxPodGracePeriod="int32", evictionMinimumReclaim="map[string]string",
        mergeDefaultEvictionSettings="bool", podsPerCore="int32", enableControllerAttachDetach="bool",
        protectKernelDefaults="bool", makeIPTablesUtilChains="bool", iptablesMasqueradeBit="int32",
        iptablesDropBit="int32", featureGates="map[string]bool", failSwapOn="bool",
        memorySwap="MemorySwapConfiguration", containerLogMaxSize="string", containerLogMaxFiles="int32",
        containerLogMaxWorkers="int32", containerLogMonitorInterval="duration",
        configMapAndSecretChangeDetectionStrategy="string", systemReserved="map[string]string",
        kubeReserved="map[string]string", reservedSystemCPUs="string", showHiddenMetricsForVersion="string",
        systemReservedCgroup="string", kubeReservedCgroup="string", enforceNodeAllocatable="[]string",
        allowedUnsafeSysctls="[]string", defaultPodSysctls="map[string]string", volumePluginDir="string",
        providerID="string", kernelMemcgNotification="bool", logging="LoggingConfiguration",
        enableSystemLogHandler="bool", enableSystemLogQuery="bool", shutdownGracePeriod="duration",
        shutdownGracePeriodCriticalPods="duration",
        shutdownGracePeriodByPodPriority="[]ShutdownGracePeriodByPodPriority",
        crashLoopBackOff="CrashLoopBackOffConfig", reservedMemory="[]MemoryReservation",
        enableProfilingHandler="bool", enableDebugFlagsHandler="bool", seccompDefault="bool",
        memoryThrottlingFactor="float", memoryReservationPolicy="string", registerWithTaints="[]Taint",
        registerNode="bool", tracing="TracingConfiguration", localStorageCapacityIsolation="bool",
        containerRuntimeEndpoint="string", imageServiceEndpoint="string", failCgroupV1="bool",
        userNamespaces="UserNamespaces"),
    "KubeletAuthorization": _f(mode="string", webhook="KubeletWebhookAuthorization"),
    "KubeletWebhookAuthorization": _f(cacheAuthorizedTTL="duration", cacheUnauthorizedTTL="duration"),
    "KubeletAuthentication": _f(x509="KubeletX509Authentication", webhook="KubeletWebhookAuthentication",
                                anonymous="KubeletAnonymousAuthentication"),
    "KubeletX509Authentication": _f(clientCAFile="string"),
    "KubeletWebhookAuthentication": _f(enabled="bool", cacheTTL="duration"),
    "KubeletAnonymousAuthentication": _f(enabled="bool"),
    "MemoryReservation": _f(numaNode="int32", limits="map[string]quantity"),
    "ShutdownGracePeriodByPodPriority": _f(priority="int32", shutdownGracePeriodSeconds="int64"),
    "MemorySwapConfiguration": _f(swapBehavior="string"),
    "CrashLoopBackOffConfig": _f(maxContainerRestartPeriod="duration"),
    "UserNamespaces": _f(idsPerPod="int64"),
}
#: (type, field) -> first minor whose kubernetes/kubelet tag has it (diff of the tags listed above).
KUBELET_SINCE: dict[tuple[str, str], int] = {
    ("KubeletConfiguration", "failCgroupV1"): 31,
    ("KubeletConfiguration", "crashLoopBackOff"): 32, ("KubeletConfiguration", "singleProcessOOMKill"): 32,
    ("KubeletConfiguration", "imagePullCredentialsVerificationPolicy"): 33,
    ("KubeletConfiguration", "mergeDefaultEvictionSettings"): 33,
    ("KubeletConfiguration", "preloadedImagesVerificationAllowlist"): 33,
    ("KubeletConfiguration", "userNamespaces"): 33,
    ("KubeletConfiguration", "memoryReservationPolicy"): 36, ("KubeletConfiguration", "tlsCurvePreferences"): 36,
    ("KubeletConfiguration", "defaultPodSysctls"): 37,
}

# --- kubeproxy.config.k8s.io/v1alpha1 ---------------------------------------------------------------------------

KUBEPROXY_V1ALPHA1: dict[str, dict[str, str]] = {
    "KubeProxyConfiguration": _f(
        featureGates="map[string]bool", clientConnection="ClientConnectionConfiguration",
        logging="LoggingConfiguration", hostnameOverride="string", bindAddress="string",
        healthzBindAddress="string", metricsBindAddress="string", bindAddressHardFail="bool",
        enableProfiling="bool", showHiddenMetricsForVersion="string", mode="string",
        iptables="KubeProxyIPTablesConfiguration", ipvs="KubeProxyIPVSConfiguration",
        nftables="KubeProxyNFTablesConfiguration", winkernel="KubeProxyWinkernelConfiguration",
        detectLocalMode="string", detectLocal="DetectLocalConfiguration", clusterCIDR="string",
        nodePortAddresses="[]string", oomScoreAdj="int32", conntrack="KubeProxyConntrackConfiguration",
        configSyncPeriod="duration", portRange="string", windowsRunAsService="bool"),
    "KubeProxyIPTablesConfiguration": _f(masqueradeBit="int32", masqueradeAll="bool", localhostNodePorts="bool",
                                         syncPeriod="duration", minSyncPeriod="duration"),
    "KubeProxyIPVSConfiguration": _f(syncPeriod="duration", minSyncPeriod="duration", scheduler="string",
                                     excludeCIDRs="[]string", strictARP="bool", tcpTimeout="duration",
                                     tcpFinTimeout="duration", udpTimeout="duration"),
    "KubeProxyNFTablesConfiguration": _f(masqueradeBit="int32", masqueradeAll="bool", syncPeriod="duration",
                                         minSyncPeriod="duration"),
    "KubeProxyConntrackConfiguration": _f(maxPerCore="int32", min="int32", tcpEstablishedTimeout="duration",
                                          tcpCloseWaitTimeout="duration", tcpBeLiberal="bool",
                                          udpTimeout="duration", udpStreamTimeout="duration"),
    "KubeProxyWinkernelConfiguration": _f(networkName="string", sourceVip="string", enableDSR="bool",
                                          rootHnsEndpointName="string", forwardHealthCheckVip="bool"),
    "DetectLocalConfiguration": _f(bridgeInterface="string", interfaceNamePrefix="string"),
}
KUBEPROXY_SINCE: dict[tuple[str, str], int] = {("KubeProxyConfiguration", "windowsRunAsService"): 31}


# --- API versions and kinds ---------------------------------------------------------------------------------------

KUBEADM_GROUP = "kubeadm.k8s.io"
#: apiVersion -> (tables, since-table, kinds, first minor accepted, last minor accepted, deprecated from minor).
#: v1beta3: deprecated in 1.31 (kubernetes/kubernetes#125029, "supported until 1.34 or later"), removed by
#: kubernetes/kubernetes#136016, merged in the 1.37 cycle (kubernetes/kubeadm#3311 waited on it on 2026-05-30).
#: v1beta4: enabled in 1.31 (#125029). kubeadm.k8s.io/v1 is an experimental placeholder from 1.37 (#136016).
API_VERSIONS: dict[str, tuple[dict[str, dict[str, str]], dict[tuple[str, str], int], tuple[str, ...], int, int,
                              int | None]] = {
    "kubeadm.k8s.io/v1beta3": (KUBEADM_V1BETA3, {}, ("InitConfiguration", "ClusterConfiguration",
                                                     "JoinConfiguration"), 22, 36, 31),
    "kubeadm.k8s.io/v1beta4": (KUBEADM_V1BETA4, {}, ("InitConfiguration", "ClusterConfiguration",
                                                     "JoinConfiguration", "ResetConfiguration",
                                                     "UpgradeConfiguration"), 31, 99, None),
    "kubelet.config.k8s.io/v1beta1": (KUBELET_V1BETA1, KUBELET_SINCE, ("KubeletConfiguration",), 0, 99, None),
    "kubeproxy.config.k8s.io/v1alpha1": (KUBEPROXY_V1ALPHA1, KUBEPROXY_SINCE, ("KubeProxyConfiguration",), 0, 99,
                                         None),
}
#: Removed kubeadm API versions -> the last kubeadm able to migrate them (util/config/common.go,
#: validateSupportedVersion, read at 1601b9e27d8570364d9a1b94be16a0ca7b744a7e).
OLD_KUBEADM_API_VERSIONS: dict[str, str] = {
    "kubeadm.k8s.io/v1alpha1": "v1.11", "kubeadm.k8s.io/v1alpha2": "v1.12", "kubeadm.k8s.io/v1alpha3": "v1.14",
    "kubeadm.k8s.io/v1beta1": "v1.15", "kubeadm.k8s.io/v1beta2": "v1.22",
}
#: Experimental kubeadm API versions per first minor (refused unless --allow-experimental-api).
EXPERIMENTAL_KUBEADM_API_VERSIONS: dict[str, int] = {"kubeadm.k8s.io/v1": 37}


def type_table(api_version: str, minor: int) -> dict[str, dict[str, str]]:
    """All struct tables visible to documents of `api_version` at `minor` (shared types included)."""
    tables, since, _, _, _, _ = API_VERSIONS[api_version]
    out: dict[str, dict[str, str]] = {}
    for source, source_since in ((CORE, CORE_SINCE), (tables, since)):
        for name, fields in source.items():
            out[name] = {k: v for k, v in fields.items() if source_since.get((name, k), 0) <= minor}
    return out


def kind_fields(api_version: str, kind: str, minor: int) -> dict[str, str]:
    """The fields of a top-level kind, TypeMeta included."""
    return {"apiVersion": "string", "kind": "string", **type_table(api_version, minor)[kind]}


# --- decoding a document by the tables (sigs.k8s.io/yaml + encoding/json, case-sensitive) -----------------------

DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")


class Loader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it: timestamps stay strings; duplicate keys are recorded."""

    duplicates: list[str]


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _mapping(loader: Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            loader.duplicates.append(f'line {key_node.start_mark.line + 1}: key "{key}" already set in map')
        seen.add(key)
    return dict(loader.construct_pairs(node, deep=True))


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)



TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_INT_RANGE = {"int32": (-(2**31), 2**31), "int64": (-(2**63), 2**63), "uint32": (0, 2**32)}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "value"


class Decoder:
    """Decodes a document against the field tables as Go's encoding/json (case-sensitive, strict) would."""

    def __init__(self, api: str, minor: int) -> None:
        self.tables = type_table(api, minor)
        self.package = api.rpartition("/")[2]
        self.problems: list[str] = []
        self.unknown: list[str] = []

    def kind(self, doc: dict[str, Any], kind: str) -> tuple[list[str], list[str]]:
        fields = {"apiVersion": "string", "kind": "string", **self.tables[kind]}
        self._struct(doc, kind, fields, "")
        return self.problems, self.unknown

    def _go(self, typ: str) -> str:
        if typ.startswith("[]"):
            return "[]" + self._go(typ[2:])
        if typ.startswith("map[string]"):
            return "map[string]" + self._go(typ[11:])
        pkg = "v1" if typ in CORE else self.package
        return f"{pkg}.{typ}" if typ in self.tables else {"duration": "v1.Duration", "time": "v1.Time",
                                                         "quantity": "resource.Quantity", "float": "float64",
                                                         "token": "*v1.BootstrapTokenString"}.get(typ, typ)

    def _fail(self, value: Any, owner: str, path: str, typ: str) -> None:
        kind = _json_kind(value)
        if kind == "number":
            kind = f"number {value}"
        self.problems.append(f"json: cannot unmarshal {kind} into Go struct field {owner}.{path} of type "
                             f"{self._go(typ)}")

    def _struct(self, value: dict[str, Any], owner: str, fields: dict[str, str], path: str) -> None:
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in fields:
                self.unknown.append(sub)
                continue
            self._value(item, fields[key], owner, sub)

    def _value(self, value: Any, typ: str, owner: str, path: str) -> None:
        if value is None:
            return  # null leaves the Go zero value
        if typ.startswith("[]") or typ.startswith("map[string]"):
            is_list = typ.startswith("[]")
            if not isinstance(value, list if is_list else dict):
                return self._fail(value, owner, path, typ)
            inner = typ[2:] if is_list else typ[11:]
            items: list[tuple[Any, Any]] = list(enumerate(value)) if isinstance(value, list) else list(value.items())
            for key, item in items:
                self._value(item, inner, owner, f"{path}[{key}]")
            return None
        if typ in self.tables:
            if not isinstance(value, dict):
                return self._fail(value, owner, path, typ)
            return self._struct(value, typ, self.tables[typ], path)
        if typ in ("string", "duration", "time", "token") and not isinstance(value, str):
            return self._fail(value, owner, path, "string" if typ in ("duration", "time") else typ)
        if typ == "bool" and not isinstance(value, bool):
            return self._fail(value, owner, path, typ)
        if typ in _INT_RANGE:
            low, high = _INT_RANGE[typ]
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
                    or not low <= int(value) < high:
                return self._fail(value, owner, path, typ)
        if typ == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return self._fail(value, owner, path, typ)
        if typ == "quantity" and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            return self._fail(value, owner, path, typ)
        if typ == "duration|int" and (isinstance(value, bool) or not isinstance(value, int | str)):
            return self._fail(value, owner, path, "v1.TimeOrMetaDuration")
        if typ in ("duration", "duration|int") and isinstance(value, str) and not DURATION.fullmatch(value):
            self.problems.append(f'{path}: time: invalid duration "{value}"')
        if typ == "time" and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            self.problems.append(f'{path}: parsing time "{value}" as RFC3339: cannot parse')
        if typ == "token" and not TOKEN_RE.match(value):
            self.problems.append(f'{path}: the bootstrap token "{value}" was not of the form '
                                 f'"{TOKEN_RE.pattern}"')
        return None


class ConfigError(ValueError):
    """A configuration kubeadm refuses while reading it (the message is kubeadm's)."""


def load_documents(text: str, minor: int, *, strict: bool = True) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{kind: document} and the warnings; strict: unknown/duplicate fields are errors (`kubeadm config validate`),
    otherwise warnings (`kubeadm init/join --config`: util/config strict.VerifyUnmarshalStrict only warns)."""
    loader = Loader(text)
    loader.duplicates = []
    docs: list[Any] = []
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
    except yaml.YAMLError as exc:
        raise ConfigError(f"error converting YAML to JSON: {exc}") from exc
    finally:
        loader.dispose()
    out: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    dup_kinds: list[str] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError("couldn't get version/kind; json parse error: the document is not a YAML mapping")
        api, kind = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
        if "/" not in api or not kind:
            group, _, ver = api.rpartition("/")
            raise ConfigError(f"invalid configuration for GroupVersionKind {{Group:{group} Version:{ver} "
                                f"Kind:{kind}}}: kind and apiVersion is mandatory information that must be specified")
        if kind in out:
            dup_kinds.append(f'invalid configuration: kind "{kind}" is specified twice in YAML file')
            continue
        warnings += _check_api_version(api, kind, minor)
        out[kind] = doc
    if dup_kinds:
        raise ConfigError(dup_kinds[0] if len(dup_kinds) == 1 else f"[{', '.join(dup_kinds)}]")
    if loader.duplicates:
        message = f"error converting YAML to JSON: yaml: unmarshal errors:\n  {chr(10).join(loader.duplicates)}"
        if strict:
            raise ConfigError(message)
        warnings.append(message)
    for kind, doc in out.items():
        problems, unknown = Decoder(str(doc["apiVersion"]), minor).kind(doc, kind)
        gvk = _gvk(str(doc["apiVersion"]), kind)
        if problems:
            raise ConfigError(f"error unmarshaling configuration {gvk}: {problems[0]}")
        if unknown:
            message = (f"error unmarshaling configuration {gvk}: strict decoding error: "
                       + ", ".join(f'unknown field "{u}"' for u in unknown))
            if strict:
                raise ConfigError(message)
            warnings.append(message)
    return out, warnings


def _gvk(api: str, kind: str) -> str:
    group, _, ver = api.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{ver}", Kind:"{kind}"}}'


def _check_api_version(api: str, kind: str, minor: int) -> list[str]:
    """validateSupportedVersion + the scheme lookup: old, experimental, not-yet and no-longer API versions."""
    old = dict(OLD_KUBEADM_API_VERSIONS)
    spec = API_VERSIONS.get(api)
    if api == "kubeadm.k8s.io/v1beta3" and spec is not None and minor > spec[4]:
        old[api] = "v1.35"  # the last kubeadm #136016 names for `kubeadm config migrate`
    if api in old:
        raise ConfigError(f'your configuration file uses an old API spec: "{api}" (kind: "{kind}"). Please use '
                            f"kubeadm {old[api]} instead and run 'kubeadm config migrate --old-config old.yaml "
                            "--new-config new.yaml', which will write the new, similar spec using a newer API "
                            "version.")
    if EXPERIMENTAL_KUBEADM_API_VERSIONS.get(api, 99) <= minor:
        raise ConfigError(f'experimental API spec: "{api}" (kind: "{kind}") is not allowed. You can use the '
                            "--allow-experimental-api flag if the command supports it.")
    if spec is None or not spec[3] <= minor <= spec[4] or kind not in spec[2]:
        scheme = ("k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"
                  if api.startswith(KUBEADM_GROUP) else "k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs")
        raise ConfigError(f'no kind "{kind}" is registered for version "{api}" in scheme "{scheme}"')
    if spec[5] is not None and minor >= spec[5]:
        return [f'your configuration file uses a deprecated API spec: "{api}" (kind: "{kind}"). Please use '
                "'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, "
                "similar spec using a newer API version."]
    return []
