/**
 * The parts of the Kubernetes objects the cluster commands read and write, as plain data (the
 * JSON field names). The client adapter hands back the library's objects, which carry every
 * other field too; a read-modify-write spreads the object it read, so fields not named here
 * survive an update.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
  targetPort?: number | string;
}

export interface Service {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: {
    type?: string;
    selector?: Record<string, string>;
    ports?: ServicePort[];
    clusterIP?: string;
    clusterIPs?: string[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

export interface EndpointAddress {
  ip: string;
}

export interface EndpointPort {
  name?: string;
  port: number;
  protocol?: string;
}

export interface EndpointSubset {
  addresses?: EndpointAddress[];
  notReadyAddresses?: EndpointAddress[];
  ports?: EndpointPort[];
}

export interface Endpoints {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  subsets?: EndpointSubset[];
}

export interface SliceEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
}

export interface SlicePort {
  name?: string;
  port?: number;
  protocol?: string;
}

export interface EndpointSlice {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  addressType: string;
  endpoints: SliceEndpoint[];
  ports?: SlicePort[];
}

export interface Secret {
  metadata?: ObjectMeta;
  type?: string;
  /** Values base64-encoded, as the API sends them. */
  data?: Record<string, string>;
}
