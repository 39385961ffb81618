// Independent xAPI 1.0.3 statement validation with Learning Locker's validator (the rules its LRS
// enforces on POST /statements). Reads a JSON array of statements on stdin; prints
// {"results": [[warning message, ...] per statement]} (an empty list: the statement is valid).
import fs from 'node:fs';
import xapiValidation from '@learninglocker/xapi-validation';

const validate = xapiValidation.default || xapiValidation;
const statements = JSON.parse(fs.readFileSync(0, 'utf8'));
const describe = (w) => `${(w.path || []).join('.')}: ${w.constructor.name}${w.message ? ' ' + w.message : ''}`;
const results = statements.map((s) => validate(s).map(describe));
process.stdout.write(JSON.stringify({results}) + '\n');
