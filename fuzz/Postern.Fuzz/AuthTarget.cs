using System.Text;
using Postern.Protocol.Commands;

namespace Postern.Fuzz;

/// <summary>
/// AUTH PLAIN and LOGIN decoding (<see cref="AuthDecoder"/>) on the two ways a response reaches it:
/// a continuation line, which the session reads as ASCII, and an initial response, which comes
/// through the command parser. Only "*" cancels; decoded text is the UTF-8 of the base64 octets; a
/// PLAIN response splits into exactly three NUL-free fields that join back to the decoded text.
/// </summary>
public static class AuthTarget
{
    public static void Run(ReadOnlySpan<byte> input)
    {
        Decode(Encoding.ASCII.GetString(input));
        var line = "AUTH PLAIN "u8.ToArray().Concat(input.ToArray()).ToArray();
        if (CommandParser.Parse(line, "example.test") is AuthCommand { InitialResponse: { } initial })
        {
            Decode(initial);
        }
    }

    private static void Decode(string line)
    {
        var status = AuthDecoder.DecodeLine(line, out var text);
        Expect.That((status == AuthLineStatus.Cancelled) == (line == "*"), "cancelled by other than \"*\"");
        if (status != AuthLineStatus.Decoded)
        {
            Expect.That(text.Length == 0, "text returned with a refusal");
            return;
        }
        if (line != "=")
        {
            Expect.That(Encoding.UTF8.GetBytes(text).AsSpan().SequenceEqual(Convert.FromBase64String(line)), "the text is not the UTF-8 of the base64 octets");
        }
        var nuls = text.Count(c => c == '\0');
        if (AuthDecoder.TryParsePlain(text, out var plain))
        {
            Expect.That(nuls == 2, "a PLAIN response accepted without exactly two NULs");
            Expect.That(!(plain.AuthorizationId + plain.AuthenticationId + plain.Password).Contains('\0'), "a NUL inside a PLAIN field");
            Expect.That($"{plain.AuthorizationId}\0{plain.AuthenticationId}\0{plain.Password}" == text, "the PLAIN fields do not join back to the response");
        }
        else
        {
            Expect.That(nuls != 2, "a PLAIN response with two NULs refused");
        }
    }
}
