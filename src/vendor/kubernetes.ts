/**
 * @kubernetes/client-node, as the rest of mlops imports it: what mlops uses of
 * it, named here. The build (scripts/bundle.js) bundles this module into
 * dist/vendor/kubernetes.cjs, a file of its own that only the commands that
 * talk to a cluster load, compiled with V8's code cache (util/code-cache.ts):
 * its ~970 module files one by one cost 0.33 s on our machines, compiling the
 * bundle 40 ms. Types, tests through tsx and `bin/dev.js` use the package itself.
 */
export {AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, PortForward, VersionApi} from '@kubernetes/client-node'
export type {V1DaemonSet, V1Deployment, V1DeploymentCondition, V1Pod, V1ReplicaSet} from '@kubernetes/client-node'
