using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests.Parsing;

/// <summary>
/// <see cref="MimeStructureGuard"/>: parts and nesting counted as the message streams past, limits
/// at limit−1, limit and limit+1, every octet passed on, whatever the chunking.
/// </summary>
public sealed class MimeStructureLimits
{
    private static (MimeStructureGuard Guard, byte[] Written) Run(string message, int chunk, int maxParts = 100, int maxDepth = 10)
    {
        var inner = new ArrayBufferWriter<byte>();
        var guard = new MimeStructureGuard(inner, maxParts, maxDepth);
        var bytes = Encoding.ASCII.GetBytes(message);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            var part = bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i));
            part.CopyTo(guard.GetSpan(part.Length));
            guard.Advance(part.Length);
        }
        return (guard, inner.WrittenSpan.ToArray());
    }

    private static string Multipart(string boundary, params string[] parts) =>
        string.Concat(parts.Select(p => $"--{boundary}\r\n{p}\r\n")) + $"--{boundary}--\r\n";

    private const string Top = "From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n";

    /// <summary>A message of <paramref name="parts"/> empty parts: the MIME bomb's shape.</summary>
    private static string Bomb(int parts) =>
        Top + "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + string.Concat(Enumerable.Repeat("--b\r\n\r\n", parts)) + "--b--\r\n";

    /// <summary>Multiparts nested <paramref name="depth"/> deep, each with one part that holds the next.</summary>
    private static string Nested(int depth)
    {
        var body = "Content-Type: text/plain\r\n\r\ninnermost";
        for (var i = depth; i >= 1; i--)
        {
            body = $"Content-Type: multipart/mixed; boundary=\"level{i}\"\r\n\r\n" + Multipart($"level{i}", body);
        }
        return Top + body;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(4096)]
    public void CountsPartsAndDepthAndPassesEveryOctetOn(int chunk)
    {
        var inner = Multipart("inner", "Content-Type: text/plain\r\n\r\none", "Content-Type: text/html\r\n\r\n<p>two</p>");
        var message = Top + "Content-Type: multipart/mixed;\r\n\tboundary=\"outer boundary\"\r\n\r\npreamble\r\n" +
            Multipart("outer boundary", "Content-Type: multipart/alternative; boundary=inner\r\n\r\n" + inner, "Content-Type: text/plain\r\n\r\n--outer boundaryX is not a delimiter\r\n") +
            "epilogue\r\n";
        var (guard, written) = Run(message, chunk);
        Assert.Equal(Encoding.ASCII.GetBytes(message), written);
        Assert.Equal(4, guard.Parts); // two outer parts, two inner
        Assert.Equal(2, guard.Depth);
        Assert.False(guard.TooManyParts);
        Assert.False(guard.TooDeep);
    }

    [Theory]
    [InlineData(99, false)]
    [InlineData(100, false)]
    [InlineData(101, true)]
    public void PartsAtTheLimit(int parts, bool refused)
    {
        var (guard, _) = Run(Bomb(parts), 3, maxParts: 100);
        Assert.Equal(refused, guard.TooManyParts);
        Assert.Equal(refused ? 101 : parts, guard.Parts);
    }

    [Theory]
    [InlineData(9, false)]
    [InlineData(10, false)]
    [InlineData(11, true)]
    public void DepthAtTheLimit(int depth, bool refused)
    {
        var (guard, _) = Run(Nested(depth), 5, maxDepth: 10);
        Assert.Equal(refused, guard.TooDeep);
        Assert.False(guard.TooManyParts);
        Assert.Equal(refused ? 11 : depth, guard.Depth);
    }

    [Fact]
    public void EncapsulatedMessagesCountAsLevels()
    {
        var message = Top + "Content-Type: message/rfc822\r\n\r\n" + Top + "Content-Type: message/rfc822\r\n\r\n" + Top +
            "Content-Type: multipart/mixed; boundary=x\r\n\r\n" + Multipart("x", "\r\nhello");
        var (guard, _) = Run(message, 1, maxDepth: 2);
        Assert.True(guard.TooDeep);
        Assert.Equal(3, guard.Depth);
    }

    [Fact]
    public void AMillionEmptyPartsStopAtTheLimitWithoutHoldingTheMessage()
    {
        var bomb = Bomb(1_000_000);
        var (guard, written) = Run(bomb, 65536, maxParts: 10_000);
        Assert.True(guard.TooManyParts);
        Assert.Equal(10_001, guard.Parts);
        Assert.Equal(bomb.Length, written.Length); // still passed on whole: the session reads to the end
    }

    [Theory]
    [InlineData("Content-Type: text/plain\r\n\r\n--b\r\n--b\r\n")] // not multipart: "--b" is text
    [InlineData("Content-Type: multipart/mixed\r\n\r\n--b\r\n--b\r\n")] // no boundary parameter
    [InlineData("Content-Type: multipart/mixed; boundary=b\r\n\r\n--bb\r\n-- b\r\n--b x\r\n")] // not delimiter lines
    [InlineData("Subject: x\r\n\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n")] // a field in the body
    public void WhatIsNotAPartIsNotCounted(string message)
    {
        var (guard, _) = Run(message, 2);
        Assert.Equal(0, guard.Parts);
    }

    [Fact]
    public void AnOuterBoundaryClosesTheLevelsInsideIt()
    {
        // The inner multipart never closes: the next outer delimiter ends it (as parsers do).
        var message = Top + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\nx\r\n" +
            "--o\r\n\r\ny\r\n--i\r\n\r\nnot a part any more\r\n--o--\r\n";
        var (guard, _) = Run(message, 1);
        Assert.Equal(3, guard.Parts); // o, i, o; the last "--i" is text
        Assert.Equal(2, guard.Depth);
    }

    [Theory]
    [InlineData("boundary=simple", "simple")]
    [InlineData("charset=x; boundary=\"with space\"; x=y", "with space")]
    [InlineData("BOUNDARY=\"q\\\"uote\"", "q\"uote")]
    [InlineData("boundary=tok (comment)", "tok")]
    [InlineData("name=x", null)]
    public void BoundaryParameter(string parameters, string? boundary)
    {
        var value = Encoding.ASCII.GetBytes("multipart/mixed; " + parameters);
        var found = MimeStructureGuard.Boundary(value);
        Assert.Equal(boundary, found is null ? null : Encoding.ASCII.GetString(found));
    }
}
