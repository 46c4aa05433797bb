export { CODE_PAGES, isBinaryTag, pageByNamespace, tagCode, tagName, type Namespace, type TagOf } from './codepages.ts';
export {
  decodeWbxml,
  decodeWbxmlYielding,
  WbxmlDecodeError,
  type DecodeLimits,
  type DecodeSlices,
  type WbxmlDecodeErrorCode,
} from './decoder.ts';
export { encodeWbxml, preEncoded, WbxmlEncodeError } from './encoder.ts';
export { child, childText, children, el, textOf, bytesOf, type WbxmlElement, type ElementContent } from './tree.ts';
export { fromXml, toXml, XmlParseError, type XmlRenderOptions } from './xml.ts';
