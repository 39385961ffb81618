// Independent verification of a credential with Digital Bazaar's libraries (jsonld.js for
// RDFC-1.0, @noble Ed25519) or `jose` for VC-JWT. Reads a JSON job on stdin:
//   {contextsDir, credential | jwt, controller (issuer profile), jwk | jwks}
// With jwks, the key is picked by the JWS header's kid (and alg), as a verifier dereferencing
// the issuer's published keys would.
// Prints {"verified": bool, "error": "..."}; contexts come only from contextsDir.
import fs from 'node:fs';
import path from 'node:path';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import jsigs from 'jsonld-signatures';
import * as jose from 'jose';

const job = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

try {
  if (job.jwt) {
    const key = job.jwks ? jose.createLocalJWKSet(job.jwks) : await jose.importJWK(job.jwk, job.jwk.alg);
    const {payload, protectedHeader} = await jose.compactVerify(job.jwt, key);
    out({verified: true, header: protectedHeader, payload: JSON.parse(new TextDecoder().decode(payload))});
  } else {
    const index = JSON.parse(fs.readFileSync(path.join(job.contextsDir, 'contexts-index.json'), 'utf8'));
    const controller = job.controller;
    const vm = controller.verificationMethod[0];
    const documentLoader = async (url) => {
      if (index[url]) {
        return {documentUrl: url, document: JSON.parse(fs.readFileSync(path.join(job.contextsDir, index[url]), 'utf8'))};
      }
      if (url === controller.id) {
        return {documentUrl: url, document: controller};
      }
      if (url === vm.id) {
        return {documentUrl: url, document: {'@context': 'https://w3id.org/security/multikey/v1', ...vm}};
      }
      throw new Error(`refusing to load ${url}`);
    };
    const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});
    const result = await jsigs.verify(job.credential, {
      suite,
      purpose: new jsigs.purposes.AssertionProofPurpose({controller}),
      documentLoader,
    });
    out({verified: result.verified, error: result.error ? (result.error.errors || [result.error]).map((e) => e.message + ' ' + JSON.stringify(e.details || {})).join('; ').slice(0, 1500) : undefined});
  }
} catch (e) {
  out({verified: false, error: String(e && e.stack || e)});
}
