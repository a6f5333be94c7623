import type * as grpc from '@grpc/grpc-js';
import {
  decodeCsrRequest,
  decodeCsrResponse,
  decodeIstioCertificateRequest,
  decodeIstioCertificateResponse,
  encodeCsrRequest,
  encodeCsrResponse,
  encodeIstioCertificateRequest,
  encodeIstioCertificateResponse,
  type CsrRequestMsg,
  type CsrResponseMsg,
  type IstioCertificateRequestMsg,
  type IstioCertificateResponseMsg,
} from './wire';

/**
 * The two Citadel CSR services as grpc-js method definitions. The .proto files in
 * src/ca/protos/ are their readable source; the messages are encoded by src/ca/wire.ts, so the
 * definitions travel inside the bundle as plain code and nothing is parsed at start.
 */

export const HANDLE_CSR: grpc.MethodDefinition<CsrRequestMsg, CsrResponseMsg> = {
  path: '/istio.v1.auth.IstioCAService/HandleCSR',
  originalName: 'HandleCSR',
  requestStream: false,
  responseStream: false,
  requestSerialize: encodeCsrRequest,
  requestDeserialize: decodeCsrRequest,
  responseSerialize: encodeCsrResponse,
  responseDeserialize: decodeCsrResponse,
};

export const CREATE_CERTIFICATE: grpc.MethodDefinition<
  IstioCertificateRequestMsg,
  IstioCertificateResponseMsg
> = {
  path: '/istio.v1.auth.IstioCertificateService/CreateCertificate',
  originalName: 'CreateCertificate',
  requestStream: false,
  responseStream: false,
  requestSerialize: encodeIstioCertificateRequest,
  requestDeserialize: decodeIstioCertificateRequest,
  responseSerialize: encodeIstioCertificateResponse,
  responseDeserialize: decodeIstioCertificateResponse,
};

/** service istio.v1.auth.IstioCAService (Istio 1.0). */
export const IstioCAService = { HandleCSR: HANDLE_CSR };

/** service istio.v1.auth.IstioCertificateService (Citadel 1.1+, istiod). */
export const IstioCertificateService = { CreateCertificate: CREATE_CERTIFICATE };

export type {
  CsrRequestMsg,
  CsrResponseMsg,
  IstioCertificateRequestMsg,
  IstioCertificateResponseMsg,
} from './wire';
