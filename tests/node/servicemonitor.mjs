// Validates ServiceMonitor objects (a JSON array on stdin) with the validator that
// @kubernetes-models/prometheus-operator generates from the Prometheus Operator's CRD schema
// (openAPIV3Schema of monitoring.coreos.com/v1 ServiceMonitor). Prints one line per object;
// exits 1 when any is invalid. Run by tests/acceptance/test_k8s.py.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const docs = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const doc of docs) {
  try {
    new ServiceMonitor(doc).validate();
    console.log(`ok ServiceMonitor/${doc.metadata.name}`);
  } catch (error) {
    invalid += 1;
    console.log(`invalid ServiceMonitor/${doc.metadata?.name}: ${error.message}`);
  }
}
process.exit(invalid ? 1 : 0);
